/**
 * In-process HTTP servers for fault injection only (cuts, corrupt bytes, 5xx,
 * stalls, slow responses). Real registries and indexes are used everywhere else.
 * Each server records the requests it received so tests can assert which
 * upstream was asked and how often.
 */
import { once } from 'node:events'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import type { Test } from 'tap'
import { freePort } from './free-port.ts'

export interface RecordedRequest {
  readonly method: string
  readonly url: string
  readonly headers: IncomingMessage['headers']
}

export type Handler = (req: IncomingMessage, res: ServerResponse) => unknown

export interface FakeUpstream {
  readonly url: string
  readonly origin: string
  readonly requests: RecordedRequest[]
  /** Replaces the handler for the following requests. */
  handle(handler: Handler): void
  /** Requests whose path starts with `prefix`. */
  count(prefix?: string): number
  /** Stops accepting and destroys open sockets (a mirror that went away). */
  close(): Promise<void>
}

/** Starts a fake upstream on 127.0.0.1:0; closed at test end. */
export async function fakeUpstream(t: Test, handler: Handler = notFound): Promise<FakeUpstream> {
  let current = handler
  const requests: RecordedRequest[] = []
  const sockets = new Set<Socket>()
  const server: Server = createServer((req, res) => {
    requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers })
    Promise.resolve(current(req, res)).catch(() => res.destroy())
  })
  server.on('connection', (socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as { port: number }
  const origin = `http://127.0.0.1:${port}`
  let closed = false
  const close = async () => {
    if (closed) return
    closed = true
    for (const socket of sockets) socket.destroy()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  }
  t.teardown(close)
  return {
    url: origin,
    origin,
    requests,
    handle: (next) => {
      current = next
    },
    count: (prefix = '') => requests.filter((r) => r.url.startsWith(prefix)).length,
    close,
  }
}

export function notFound(_req: IncomingMessage, res: ServerResponse): void {
  res.writeHead(404).end('not found')
}

/** Answers with `body`, honouring `Range: bytes=N-` (206) unless `ignoreRange`. */
export function serveBytes(
  body: Buffer,
  options: { ignoreRange?: boolean; headers?: Record<string, string> } = {},
): Handler {
  return (req, res) => {
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '')
    if (range && !options.ignoreRange) {
      const start = Number(range[1])
      res.writeHead(206, {
        'content-length': String(body.length - start),
        'content-range': `bytes ${start}-${body.length - 1}/${body.length}`,
        ...options.headers,
      })
      res.end(req.method === 'HEAD' ? undefined : body.subarray(start))
      return
    }
    res.writeHead(200, { 'content-length': String(body.length), ...options.headers })
    res.end(req.method === 'HEAD' ? undefined : body)
  }
}

/** A free loopback port with nothing listening on it (connection refused). */
export async function closedPort(): Promise<number> {
  return freePort()
}
