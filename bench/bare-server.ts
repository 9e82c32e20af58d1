/**
 * The ceiling of the stack for a small warm response: a server that answers
 * every GET with the same bytes from memory, through Fastify (the framework
 * pullthrough runs on, no hooks or plugins) or through bare node:http. It
 * does none of pullthrough's per-request work (routing to a cache, auth,
 * metrics, logs, freshness), so its rate bounds what any Node server on this
 * stack can reach here: bench/pypi-static.ts measures it beside nginx.
 * Usage: node --import tsx bench/bare-server.ts fastify|http BODY_FILE PORT
 * Prints `listening` once it accepts connections.
 */
import { readFile } from 'node:fs/promises'
import { createServer } from 'node:http'
import Fastify from 'fastify'

const [kind, bodyFile, portText] = process.argv.slice(2)
if (bodyFile === undefined || portText === undefined || (kind !== 'fastify' && kind !== 'http'))
  throw new Error('usage: bare-server.ts fastify|http BODY_FILE PORT')
const body = await readFile(bodyFile)
const port = Number(portText)
const headers = { 'content-type': 'text/html; charset=utf-8' }

if (kind === 'fastify') {
  const app = Fastify({ logger: false })
  app.get('/*', (_request, reply) => reply.headers(headers).send(body))
  await app.listen({ host: '127.0.0.1', port })
} else {
  const server = createServer((_request, response) => {
    response.writeHead(200, { ...headers, 'content-length': body.length })
    response.end(body)
  })
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve))
}
process.stdout.write('listening\n')
