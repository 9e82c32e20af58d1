/**
 * A scripted upstream for fault injection: a fault server (fault-server.ts)
 * whose every path goes to one replaceable handler. A handler returns a Reply
 * (serveBytes; the server's faults, Range and HEAD apply to it) or writes the
 * response itself (stalls, slow answers). Real registries and indexes are used
 * everywhere else.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Test } from 'tap'
import {
  startFaultServer,
  type FaultServer,
  type Handler,
  type RecordedRequest,
  type Reply,
} from './fault-server.ts'
import { freePort } from './free-port.ts'

export type { Handler, RecordedRequest }

export interface FakeUpstream extends FaultServer {
  readonly url: string
  /** Replaces the handler for the following requests. */
  handle(handler: Handler): void
  /** Requests whose target (path and query) starts with `prefix`. */
  count(prefix?: string): number
  /** Stops accepting and destroys open sockets (a mirror that went away). */
  close(): Promise<void>
}

/** Starts a fake upstream on 127.0.0.1:0; closed at test end. */
export async function fakeUpstream(t: Test, handler: Handler = notFound): Promise<FakeUpstream> {
  let current = handler
  const server = await startFaultServer(t, () => (req, res) => current(req, res))
  return {
    ...server,
    url: server.origin,
    handle: (next) => {
      current = next
    },
    count: (prefix = '') => server.requests.filter((r) => r.url.startsWith(prefix)).length,
    close: () => server.stop(),
  }
}

export function notFound(_req: IncomingMessage, res: ServerResponse): void {
  res.writeHead(404).end('not found')
}

/** Answers with `body`; a single Range gets its 206 unless `ignoreRange`. */
export function serveBytes(
  body: Buffer,
  options: { ignoreRange?: boolean; headers?: Record<string, string> } = {},
): (req?: IncomingMessage, res?: ServerResponse) => Reply {
  return () => ({ status: 200, headers: options.headers ?? {}, body, ranges: !options.ignoreRange })
}

/** A free loopback port with nothing listening on it (connection refused). */
export async function closedPort(): Promise<number> {
  return freePort()
}
