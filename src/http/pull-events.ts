/**
 * The pull event of every response that served an artifact. Handlers state
 * what they served in `reply.pull`; the body's bytes are counted on the way
 * out; the event and the cache and bytes metrics are reported once, when the
 * response ends.
 */
import type { Readable } from 'node:stream'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { onChunkWritten } from './written-chunks.ts'
import { countBytes } from '../observability/count-bytes.ts'
import type { Logger } from '../observability/logger.ts'
import type { Metrics } from '../observability/metrics.ts'
import {
  PullRecorder,
  type PullEventFields,
  type ServedArtifact,
} from '../observability/pull-event.ts'

declare module 'fastify' {
  interface FastifyReply {
    /** What this response serves; set by sendPull, undefined unless it serves an artifact. */
    pull: ServedArtifact | undefined
    /** Body bytes handed to the connection so far (a number for a body sent whole). Internal. */
    pullBytes: (() => number) | number | undefined
    /** Whether the pull event went out (once per response). Internal. */
    pullReported: boolean
    /**
     * Sends `body` as the artifact `served`: its pull event is reported once,
     * when the response ends, with the bytes that went out.
     */
    sendPull(served: ServedArtifact, body?: Buffer | string | Readable): FastifyReply
  }
}

export interface PullEvents {
  /** Reports the reply's pull event, if it served an artifact and was not reported yet. */
  report(request: FastifyRequest, reply: FastifyReply): void
}

/**
 * No hook sees every response: handlers that serve an artifact call
 * `reply.sendPull`, and only streamed bodies pass through a byte counter.
 * A global onSend hook cost a third of the warm tag-manifest GETs a second, and
 * state kept per reply in a WeakMap or closure tripled GC time there
 * (bench/RESULTS.md, 2026-12-02): the state lives in reply decorations.
 */
export function registerPullEvents(
  app: FastifyInstance,
  deps: {
    readonly logger: Logger
    readonly metrics: Metrics
    /** Called with every pull event after it is logged and counted (the statistics). */
    readonly onPull?: ((event: PullEventFields) => void) | undefined
    /** Told of each streamed body chunk once the socket is done with it (read buffers go back). */
    readonly chunkWritten?: ((chunk: unknown) => void) | undefined
  },
): PullEvents {
  const recorder = new PullRecorder(deps.logger, deps.metrics)
  const report = (request: FastifyRequest, reply: FastifyReply): void => {
    const sent = reply.pullBytes
    // Errors are not pulls; a body cut after a 2xx header still is, with what was sent.
    if (!reply.pull || sent === undefined || reply.pullReported || reply.statusCode >= 400) return
    reply.pullReported = true
    // GET routes answer HEAD too (Fastify's exposeHeadRoutes): the method says which it was.
    const head = request.method === 'HEAD'
    const pull = reply.pull
    // Field by field, not `...pull`: spreading the handlers' objects (of several
    // shapes) took the slow path and halved warm tag-manifest GETs a second.
    const event: PullEventFields = {
      protocol: pull.protocol,
      pool: pull.pool,
      subject: pull.subject,
      reference: pull.reference,
      digest: pull.digest,
      cache: pull.cache,
      upstream: pull.upstream,
      action: head ? 'head' : 'get',
      bytes: head ? 0 : typeof sent === 'number' ? sent : sent(),
      durationMs: reply.elapsedTime,
      clientIp: request.ip,
    }
    recorder.record(event)
    deps.onPull?.(event)
  }

  app.decorateReply('pull', undefined)
  app.decorateReply('pullBytes', undefined)
  app.decorateReply('pullReported', false)
  app.decorateReply(
    'sendPull',
    function sendPull(
      this: FastifyReply,
      served: ServedArtifact,
      body?: Buffer | string | Readable,
    ) {
      this.pull = served
      if (!isReadable(body)) {
        this.pullBytes =
          typeof body === 'string' ? Buffer.byteLength(body) : body === undefined ? 0 : body.length
        return this.send(body)
      }
      const counted = countBytes(body)
      this.pullBytes = counted.bytes
      if (deps.chunkWritten) onChunkWritten(this.raw, deps.chunkWritten)
      // Fastify runs no onResponse hook for a response that ends before its last
      // byte (the client left, or the body failed mid-way): report those here.
      this.raw.once('close', () => {
        if (!this.raw.writableFinished) report(this.request, this)
      })
      return this.send(counted.stream)
    },
  )
  return { report }
}

function isReadable(payload: unknown): payload is Readable {
  return typeof (payload as Readable | null)?.pipe === 'function'
}
