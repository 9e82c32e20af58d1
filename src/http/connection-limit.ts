/**
 * server.maxConnections. Node's own `server.maxConnections` closes a socket
 * over the cap unanswered, which a client sees as a reset it may retry at
 * once. Instead, open connections are counted here; one over the cap is
 * marked, its first request is answered 503 with Retry-After and
 * `Connection: close` (in the route's protocol format), and it is closed.
 * Connections already open are unaffected. A marked connection that sends no
 * request is closed after a short while, so it cannot hold a slot either.
 */
import type { Socket } from 'node:net'
import { Server as TlsServer } from 'node:tls'
import type { FastifyInstance } from 'fastify'
import { ServerBusyError } from './errors.ts'

/** What a refused client is told to wait before it tries again. */
export const BUSY_RETRY_AFTER_SECONDS = 5
/** A refused connection that sends no request within this is closed. */
export const REFUSED_CONNECTION_TIMEOUT_MS = 10_000

export interface ConnectionLimitOptions {
  readonly maxConnections: number
  /** Called once per refused connection (the metric). */
  readonly onRefused: () => void
}

/** Counts connections on `app.server` and answers those over the cap 503; call before `listen`. */
export function limitConnections(app: FastifyInstance, options: ConnectionLimitOptions): void {
  const refused = new WeakSet<Socket>()
  let open = 0
  // Over TLS, requests arrive on the TLS socket, which exists once the handshake is done.
  const event = app.server instanceof TlsServer ? 'secureConnection' : 'connection'
  app.server.on(event, (socket: Socket) => {
    if (open >= options.maxConnections) {
      refused.add(socket)
      options.onRefused()
      socket.setTimeout(REFUSED_CONNECTION_TIMEOUT_MS, () => socket.destroy())
      return
    }
    open++
    socket.once('close', () => {
      open--
    })
  })
  // The first hook registered: nothing else runs for a refused connection.
  // Callback style: an async hook costs every request a promise.
  app.addHook('onRequest', (request, reply, done) => {
    if (!refused.has(request.raw.socket)) {
      done()
      return
    }
    reply.header('retry-after', String(BUSY_RETRY_AFTER_SECONDS)).header('connection', 'close')
    done(new ServerBusyError(options.maxConnections))
  })
}
