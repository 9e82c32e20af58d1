/**
 * The ceiling of the stack, with none of pullthrough's per-request work
 * (routing to a cache, auth, metrics, logs, freshness, hashing):
 *   - `fastify` and `http` answer every GET with the same small body from
 *     memory, through Fastify (the framework pullthrough runs on, no hooks or
 *     plugins) or bare node:http: what any Node server on this stack can
 *     reach for a small warm response (bench/pypi-static.ts);
 *   - `file` sends BODY_FILE from disk for every GET through bare node:http,
 *     in reads of pullthrough's size into two buffers used in turn (one is
 *     read while the other is written): what Node can reach for a large warm
 *     file without hashing it (bench/run.ts).
 * Usage: node --import tsx bench/bare-server.ts fastify|http|file BODY_FILE PORT
 * Prints `listening` once it accepts connections.
 */
import { open, readFile, stat } from 'node:fs/promises'
import { createServer, type ServerResponse } from 'node:http'
import Fastify from 'fastify'
import { READ_HIGH_WATER_MARK } from '../src/storage/read-buffers.ts'

const KINDS = ['fastify', 'http', 'file']
const [kind, bodyFile, portText] = process.argv.slice(2)
if (bodyFile === undefined || portText === undefined || !KINDS.includes(kind ?? ''))
  throw new Error(`usage: bare-server.ts ${KINDS.join('|')} BODY_FILE PORT`)
const port = Number(portText)
const headers = { 'content-type': 'text/html; charset=utf-8' }

if (kind === 'file') {
  const { size } = await stat(bodyFile)
  const server = createServer((_request, response) => {
    response.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': size })
    sendFile(bodyFile, response).catch((error: unknown) => response.destroy(error as Error))
  })
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve))
} else if (kind === 'fastify') {
  const body = await readFile(bodyFile)
  const app = Fastify({ logger: false })
  app.get('/*', (_request, reply) => reply.headers(headers).send(body))
  await app.listen({ host: '127.0.0.1', port })
} else {
  const body = await readFile(bodyFile)
  const server = createServer((_request, response) => {
    response.writeHead(200, { ...headers, 'content-length': body.length })
    response.end(body)
  })
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve))
}
process.stdout.write('listening\n')

async function sendFile(path: string, response: ServerResponse): Promise<void> {
  const fh = await open(path)
  let spare = Buffer.allocUnsafe(READ_HIGH_WATER_MARK)
  let reading = fh.read(Buffer.allocUnsafe(READ_HIGH_WATER_MARK), 0, READ_HIGH_WATER_MARK, 0)
  try {
    let position = 0
    for (;;) {
      const { bytesRead, buffer } = await reading
      if (bytesRead === 0) break
      position += bytesRead
      reading = fh.read(spare, 0, READ_HIGH_WATER_MARK, position)
      spare = buffer
      // `buffer` is read into again only after its write completed.
      await new Promise<void>((resolve, reject) =>
        response.write(buffer.subarray(0, bytesRead), (error) =>
          error ? reject(error) : resolve(),
        ),
      )
    }
    response.end()
  } finally {
    await reading.catch(() => undefined)
    await fh.close()
  }
}
