/**
 * Headers every response carries, whichever route, error or 404 produced it.
 * `X-Content-Type-Options: nosniff`: a browser must take each body as its
 * declared type, so nothing an upstream sent can be sniffed into HTML or
 * script on pullthrough's origin.
 */
import { STATUS_CODES } from 'node:http'
import type { Socket } from 'node:net'
import type { FastifyInstance } from 'fastify'

export const SECURITY_HEADERS = { 'x-content-type-options': 'nosniff' } as const

/** Sets the headers on every reply, before any route, hook or error handler runs. */
export function addSecurityHeaders(app: FastifyInstance): void {
  // Callback style, and the pairs listed once: reply.headers() lists an object's keys per call.
  const pairs = Object.entries(SECURITY_HEADERS)
  app.addHook('onRequest', (_request, reply, done) => {
    for (const [name, value] of pairs) reply.header(name, value)
    done()
  })
}

/**
 * fastify's `clientErrorHandler`: requests Node's parser rejects never reach a
 * route, so their answer is written here, as fastify's default does (408,
 * 431, else 400), with the same headers as every other response.
 */
export function answerClientError(error: NodeJS.ErrnoException, socket: Socket): void {
  if (error.code === 'ECONNRESET' || socket.destroyed) return
  const status =
    error.code === 'ERR_HTTP_REQUEST_TIMEOUT'
      ? 408
      : error.code === 'HPE_HEADER_OVERFLOW'
        ? 431
        : 400
  const reason = STATUS_CODES[status] ?? 'Bad Request'
  const body = JSON.stringify({ error: 'PT_BAD_REQUEST', message: reason })
  const headers = [
    `HTTP/1.1 ${status} ${reason}`,
    'content-type: application/json',
    `content-length: ${Buffer.byteLength(body)}`,
    ...Object.entries(SECURITY_HEADERS).map(([name, value]) => `${name}: ${value}`),
    'connection: close',
  ]
  if (socket.writable) socket.write(`${headers.join('\r\n')}\r\n\r\n${body}`)
  socket.destroy(error)
}
