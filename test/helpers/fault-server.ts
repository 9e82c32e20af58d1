/**
 * The one fault-injecting HTTP server of the tests: listens on 127.0.0.1:0,
 * records every request, and takes faults per path (a status, a body cut after
 * N bytes, corrupt bytes, going away and coming back on the same port). A route
 * answers with a Reply (faults, a single Range and HEAD are applied to it) or
 * writes the response itself (stalls, slow or streamed answers; only status
 * faults apply). Paths are exact, or prefixes when they end in `*`; an absolute
 * URL may stand for its path and must then point at that server.
 */
import { once } from 'node:events'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import type { Test } from 'tap'

export interface RecordedRequest {
  readonly method: string
  readonly url: string
  readonly headers: IncomingMessage['headers']
}

export interface FaultOptions {
  /** Requests the fault applies to before the path answers normally again; default: until cleared. */
  readonly times?: number
}

/** One in-process server with a request log and per-path faults. */
export interface FaultServer {
  /** `http://127.0.0.1:PORT`. */
  readonly origin: string
  readonly port: number
  /** Every request received, oldest first. */
  readonly requests: RecordedRequest[]
  /** Requests to `path` (exact, or a prefix ending in `*`; query ignored). */
  requestsTo(path: string): RecordedRequest[]
  /** How many requests `path` got; all requests when omitted. */
  count(path?: string): number
  /** `path` answers `status` (default 503) with a short text body. */
  fail(path: string, status?: number, options?: FaultOptions): void
  /** `path` answers 404. */
  notFound(path: string, options?: FaultOptions): void
  /** `path` sends its headers (full Content-Length) and `afterBytes` body bytes, then drops the connection. */
  cut(path: string, afterBytes: number, options?: FaultOptions): void
  /** `path` answers with its body's middle byte flipped: same length, wrong sha256 (Range slices the corrupt body). */
  corrupt(path: string, options?: FaultOptions): void
  /** Removes every fault. */
  clearFaults(): void
  /** Stops listening and destroys open connections: connections are refused from then on. */
  stop(): Promise<void>
  /** Listens again on the same port; a no-op while running. */
  start(): Promise<void>
}

/** What a route answers; the server applies faults, Range and HEAD to it. */
export interface Reply {
  readonly status: number
  readonly headers: Record<string, string>
  readonly body: Buffer
  /** Honour a single `Range: bytes=` range on a 200 (RFC 9110 section 14). */
  readonly ranges?: boolean
}

/**
 * Answers a request: returns a Reply (sent with faults, Range and HEAD applied)
 * or writes the response itself (then only status faults apply).
 */
export type Handler = (req: IncomingMessage, res: ServerResponse) => unknown

/** A request's answer: a Reply, or a Handler that writes it (possibly async). */
export type Route = (req: IncomingMessage, path: string) => Reply | Handler

type Fault =
  | { readonly kind: 'status'; readonly status: number }
  | { readonly kind: 'cut'; readonly afterBytes: number }
  | { readonly kind: 'corrupt' }

interface ActiveFault {
  readonly path: string
  readonly fault: Fault
  remaining: number
}

export function text(status: number, body: string, headers: Record<string, string> = {}): Reply {
  return {
    status,
    headers: { 'content-type': 'text/plain; charset=utf-8', ...headers },
    body: Buffer.from(body),
  }
}

function pathMatches(pattern: string, path: string): boolean {
  return pattern.endsWith('*') ? path.startsWith(pattern.slice(0, -1)) : path === pattern
}

/** The path of a request's target, origin-form or (from a proxy-minded client) absolute-form. */
function requestPath(url: string): string {
  if (url.startsWith('/')) return url.split('?')[0]!
  try {
    return new URL(url).pathname
  } catch {
    return url
  }
}

function flipMiddleByte(body: Buffer): Buffer {
  const copy = Buffer.from(body)
  if (copy.length > 0) {
    const middle = Math.floor(copy.length / 2)
    copy[middle] = copy[middle]! ^ 0xff
  }
  return copy
}

/** A single `bytes=a-b`, `bytes=a-` or `bytes=-n` range applied to a 200; anything else is ignored. */
function applyRange(req: IncomingMessage, reply: Reply): Reply {
  const header = req.headers.range
  if (!reply.ranges || reply.status !== 200 || header === undefined) return reply
  const match = /^bytes=(\d*)-(\d*)$/.exec(header.trim())
  if (!match || (match[1] === '' && match[2] === '')) return reply
  const size = reply.body.length
  let start: number
  let end: number
  if (match[1] === '') {
    start = Math.max(0, size - Number(match[2]))
    end = size - 1
  } else {
    start = Number(match[1])
    end = match[2] === '' ? size - 1 : Math.min(Number(match[2]), size - 1)
    if (match[2] !== '' && Number(match[2]) < start) return reply
  }
  if (start >= size || end < start) {
    return text(416, 'range not satisfiable\n', { 'content-range': `bytes */${size}` })
  }
  return {
    status: 206,
    headers: { ...reply.headers, 'content-range': `bytes ${start}-${end}/${size}` },
    body: reply.body.subarray(start, end + 1),
  }
}

function send(req: IncomingMessage, res: ServerResponse, reply: Reply, cutAfter?: number): void {
  const noBody = reply.status === 304 || reply.status === 204
  const headers = noBody
    ? reply.headers
    : { ...reply.headers, 'content-length': String(reply.body.length) }
  res.writeHead(reply.status, headers)
  if (noBody || req.method === 'HEAD') {
    res.end()
    return
  }
  if (cutAfter !== undefined) {
    // Send the head and what the fault lets through, then close the connection mid-body:
    // end() flushes the queued bytes before the FIN, so the client gets exactly these.
    res.flushHeaders()
    if (cutAfter > 0) res.write(reply.body.subarray(0, cutAfter))
    res.socket?.end()
    return
  }
  res.end(reply.body)
}

function isReply(value: unknown): value is Reply {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as Reply).status === 'number' &&
    Buffer.isBuffer((value as Reply).body)
  )
}

/** Runs a handler; a Reply it returns is sent (with `fault`), a handler that throws drops the connection. */
export function runHandler(
  handler: Handler,
  req: IncomingMessage,
  res: ServerResponse,
  fault?: Fault,
): void {
  Promise.resolve(handler(req, res)).then(
    (returned) => {
      if (isReply(returned)) reply(req, res, returned, fault)
    },
    () => res.destroy(),
  )
}

/** Sends a route's Reply with the request's cut or corrupt fault and its Range applied. */
function reply(req: IncomingMessage, res: ServerResponse, answer: Reply, fault?: Fault): void {
  const body =
    fault?.kind === 'corrupt' && answer.status === 200 ? flipMiddleByte(answer.body) : answer.body
  const cutAfter = fault?.kind === 'cut' ? fault.afterBytes : undefined
  send(req, res, applyRange(req, { ...answer, body }), cutAfter)
}

/** Starts a server on 127.0.0.1:0 answering with `route`; stopped at test end. */
export async function startFaultServer(t: Test, route: Route): Promise<FaultServer> {
  const requests: RecordedRequest[] = []
  let faults: ActiveFault[] = []
  const sockets = new Set<Socket>()
  let origin = ''

  /** The path of a request target or of an absolute URL on this server. */
  const pathOf = (target: string): string => {
    if (target.startsWith('/')) return target.split('?')[0]!
    const url = new URL(target)
    if (url.origin !== origin) throw new Error(`${target} is not on this server (${origin})`)
    return url.pathname
  }
  const takeFault = (path: string): Fault | undefined => {
    const active = faults.find((f) => pathMatches(f.path, path))
    if (!active) return undefined
    active.remaining -= 1
    if (active.remaining <= 0) faults = faults.filter((f) => f !== active)
    return active.fault
  }
  const addFault = (target: string, fault: Fault, options: FaultOptions = {}) => {
    const path = pathOf(target)
    // The newest fault for a path wins: it replaces an older one for the same path.
    faults = [
      { path, fault, remaining: options.times ?? Infinity },
      ...faults.filter((f) => f.path !== path),
    ]
  }

  const server = createServer((req, res) => {
    requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers })
    const path = requestPath(req.url ?? '/')
    const fault = takeFault(path)
    if (fault?.kind === 'status') {
      send(req, res, text(fault.status, `injected fault: ${fault.status}\n`))
      return
    }
    let answer: Reply | Handler
    try {
      answer = route(req, path)
    } catch (error) {
      answer = text(500, `fixture error: ${String(error)}\n`)
    }
    if (typeof answer === 'function') runHandler(answer, req, res, fault)
    else reply(req, res, answer, fault)
  })
  server.on('connection', (socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
  })

  let port = 0
  const start = async () => {
    if (server.listening) return
    server.listen(port, '127.0.0.1')
    await once(server, 'listening')
    port = (server.address() as { port: number }).port
  }
  const stop = async () => {
    if (!server.listening) return
    const closed = new Promise<void>((resolve) => server.close(() => resolve()))
    for (const socket of sockets) socket.destroy()
    await closed
  }
  await start()
  origin = `http://127.0.0.1:${port}`
  t.teardown(stop)

  const requestsTo = (target: string) => {
    const path = pathOf(target)
    return requests.filter((r) => pathMatches(path, requestPath(r.url)))
  }
  return {
    origin,
    port,
    requests,
    requestsTo,
    count: (target) => (target === undefined ? requests.length : requestsTo(target).length),
    fail: (target, status = 503, options) => addFault(target, { kind: 'status', status }, options),
    notFound: (target, options) => addFault(target, { kind: 'status', status: 404 }, options),
    cut: (target, afterBytes, options) => addFault(target, { kind: 'cut', afterBytes }, options),
    corrupt: (target, options) => addFault(target, { kind: 'corrupt' }, options),
    clearFaults: () => {
      faults = []
    },
    stop,
    start,
  }
}
