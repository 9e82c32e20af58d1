/**
 * GET/HEAD /v2/<name>/blobs/<digest>: content by digest through the read-through
 * cache, with single-range requests (RFC 9110 §14) answered 206.
 */
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { ReadThrough } from '../cache/read-through.ts'
import { OciError } from './errors.ts'
import type { DockerTarget } from './target.ts'
import { discardBody } from '../cache/served-body.ts'

export interface ByteRange {
  readonly start: number
  /** Inclusive; undefined for "to the end" (also for an end past any possible blob). */
  readonly end: number | undefined
}

/**
 * `bytes=a-b` or `bytes=a-`; undefined for no Range; OciError RANGE_INVALID
 * for anything else. Offsets beyond safe integers are past the end of any
 * blob: such a start stays unsafe (answered 416 by the caller), such an end
 * means "to the end".
 */
export function parseRange(header: string | undefined): ByteRange | undefined {
  if (header === undefined) return undefined
  const match = /^bytes=(\d+)-(\d*)$/.exec(header.trim())
  if (!match)
    throw new OciError('RANGE_INVALID', undefined, {
      message: 'only one byte range "bytes=a-b" is supported',
    })
  const start = Number(match[1])
  const last = match[2] === '' ? undefined : Number(match[2])
  const end = last !== undefined && Number.isSafeInteger(last) ? last : undefined
  if (end !== undefined && end < start) throw new OciError('RANGE_INVALID')
  return { start, end }
}

/** RFC 9110 §15.5.17: a range past the end is 416, with the size in `Content-Range: bytes *\/<size>`. */
function notSatisfiable(reply: FastifyReply, size: number | undefined): OciError {
  if (size !== undefined) reply.header('content-range', `bytes */${size}`)
  return new OciError('RANGE_INVALID', undefined, {
    message: 'range starts past the end of the blob',
  })
}

export async function serveBlob(
  cache: ReadThrough,
  target: DockerTarget,
  digest: string,
  request: FastifyRequest,
  reply: FastifyReply,
): Promise<FastifyReply> {
  const blob = {
    digest,
    source: target.remote.blob(digest),
  }
  const pulled = {
    protocol: 'docker',
    pool: target.registry.name,
    subject: target.repository,
    reference: digest,
    digest,
  } as const
  reply
    .header('docker-content-digest', blob.digest)
    .header('content-type', 'application/octet-stream')
  if (request.method === 'HEAD') {
    const stat = await cache.stat(blob.digest, blob.source)
    if (stat.size !== undefined) reply.header('content-length', String(stat.size))
    return reply.code(200).sendPull({ ...pulled, cache: stat.cache, upstream: stat.upstream })
  }
  const range = parseRange(request.headers.range)
  if (range && !Number.isSafeInteger(range.start)) {
    const { size } = await cache.stat(blob.digest, blob.source)
    throw notSatisfiable(reply, size)
  }
  // storage.s3.redirect: the client fetches a stored blob (and its range) from the bucket.
  const location = await cache.redirectTo(blob.digest)
  if (location !== undefined) {
    reply.code(307).header('location', location).removeHeader('content-type')
    return reply.sendPull({ ...pulled, cache: 'hit', upstream: undefined })
  }
  const served = await cache.serve(blob.digest, blob.source, range ? { range } : {})
  reply.header('accept-ranges', 'bytes')
  if (range && served.size !== undefined) {
    if (range.start >= served.size) {
      discardBody(served.body)
      throw notSatisfiable(reply, served.size)
    }
    const end = Math.min(range.end ?? served.size - 1, served.size - 1)
    reply
      .code(206)
      .header('content-range', `bytes ${range.start}-${end}/${served.size}`)
      .header('content-length', String(end - range.start + 1))
  } else if (served.size !== undefined) {
    reply.header('content-length', String(served.size))
  }
  return reply.sendPull({ ...pulled, cache: served.cache, upstream: served.upstream }, served.body)
}
