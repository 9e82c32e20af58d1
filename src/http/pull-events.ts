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
    /** Body bytes handed to the connection so far (a number for a body sent whole). Internal. */
    pullBytes: (() => number) | number | undefined
    /** Whether the pull event went out (once per response). Internal. */
    pullReported: boolean
  }
}

export interface PullEvents {
  /** Reports the reply's pull event, if it served an artifact and was not reported yet. */
  report(request: FastifyRequest, reply: FastifyReply): void
}

/**
 * The state of a response lives in reply decorations, not in a WeakMap or a
 * closure per reply: on the warm tag-manifest path (thousands of replies a
 * second) those kept every reply alive into old-space and tripled the GC
 * time (bench/RESULTS.md, 2026-12-02).
 */
export function registerPullEvents(
  app: FastifyInstance,
  deps: { readonly logger: Logger; readonly metrics: Metrics },
): PullEvents {
  const report = (request: FastifyRequest, reply: FastifyReply): void => {
    const sent = reply.pullBytes
    // Errors are not pulls; a body cut after a 2xx header still is, with what was sent.
    if (!reply.pull || sent === undefined || reply.pullReported || reply.statusCode >= 400) return
    reply.pullReported = true
    // GET routes answer HEAD too (Fastify's exposeHeadRoutes): the method says which it was.
    const head = request.method === 'HEAD'
    recordPull(deps.logger, deps.metrics, {
      ...reply.pull,
      action: head ? 'head' : 'get',
      bytes: head ? 0 : typeof sent === 'number' ? sent : sent(),
      durationMs: reply.elapsedTime,
      clientIp: request.ip,
    })
  }

  app.decorateReply('pull', undefined)
  app.decorateReply('pullBytes', undefined)
  app.decorateReply('pullReported', false)
  app.addHook('onSend', (request, reply, payload, done) => {
    if (!reply.pull) {
      done(null, payload)
      return
    }
    if (!isReadable(payload)) {
      reply.pullBytes =
        typeof payload === 'string'
          ? Buffer.byteLength(payload)
          : Buffer.isBuffer(payload)
            ? payload.length
            : 0
      done(null, payload)
      return
    }
    const first = reply.pullBytes === undefined
    const counted = countBytes(payload)
    reply.pullBytes = counted.bytes
    done(null, counted.stream)
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
