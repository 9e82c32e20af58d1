/**
 * The pull event of every response that served an artifact. Handlers state
 * what they served in `reply.pull`; the body's bytes are counted on the way
 * out; the event and the cache and bytes metrics are reported once, when the
 * response ends.
 */
import type { Readable } from 'node:stream'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { countBytes } from '../observability/count-bytes.ts'
import type { Logger } from '../observability/logger.ts'
import type { Metrics } from '../observability/metrics.ts'
import { recordPull, type ServedArtifact } from '../observability/pull-event.ts'

declare module 'fastify' {
  interface FastifyReply {
    /** What this response serves, set by its handler; undefined unless it serves an artifact. */
    pull: ServedArtifact | undefined
  }
}

export interface PullEvents {
  /** Reports the reply's pull event, if it served an artifact and was not reported yet. */
  report(request: FastifyRequest, reply: FastifyReply): void
}

interface Outgoing {
  /** Body bytes handed to the connection so far. */
  readonly bytes: () => number
  reported: boolean
}

export function registerPullEvents(
  app: FastifyInstance,
  deps: { readonly logger: Logger; readonly metrics: Metrics },
): PullEvents {
  const outgoing = new WeakMap<FastifyReply, Outgoing>()
  const report = (request: FastifyRequest, reply: FastifyReply): void => {
    const out = outgoing.get(reply)
    // Errors are not pulls; a body cut after a 2xx header still is, with what was sent.
    if (!reply.pull || !out || out.reported || reply.statusCode >= 400) return
    out.reported = true
    // GET routes answer HEAD too (Fastify's exposeHeadRoutes): the method says which it was.
    const head = request.method === 'HEAD'
    recordPull(deps.logger, deps.metrics, {
      ...reply.pull,
      action: head ? 'head' : 'get',
      bytes: head ? 0 : out.bytes(),
      durationMs: reply.elapsedTime,
      clientIp: request.ip,
    })
  }

  app.decorateReply('pull', undefined)
  app.addHook('onSend', (request, reply, payload, done) => {
    if (!reply.pull) {
      done(null, payload)
      return
    }
    const first = !outgoing.has(reply)
    if (isReadable(payload)) {
      const counted = countBytes(payload)
      outgoing.set(reply, { bytes: counted.bytes, reported: false })
      done(null, counted.stream)
    } else {
      const bytes =
        typeof payload === 'string'
          ? Buffer.byteLength(payload)
          : Buffer.isBuffer(payload)
            ? payload.length
            : 0
      outgoing.set(reply, { bytes: () => bytes, reported: false })
      done(null, payload)
    }
    // Fastify runs no onResponse hook for a response that ends before its last
    // byte (the client left, or the body failed mid-way): report those here.
    if (first)
      reply.raw.once('close', () => {
        if (!reply.raw.writableFinished) report(request, reply)
      })
  })
  return { report }
}

function isReadable(payload: unknown): payload is Readable {
  return typeof (payload as Readable | null)?.pipe === 'function'
}
