/**
 * The pull event: one structured log line per served artifact, the record an
 * operator greps or ships to a log store to see who pulled what from where.
 * Built here and nowhere else so every protocol logs the same fields.
 */
import type { Logger } from 'pino'
import type { Metrics } from './metrics.ts'

export type CacheResult = 'hit' | 'miss' | 'stale' | 'revalidated'

export interface PullEventFields {
  readonly protocol: 'docker' | 'pypi'
  /** Docker registry name or PyPI index name. */
  readonly pool: string
  /** Docker repository or PyPI project. */
  readonly subject: string
  /** Docker tag/digest reference or PyPI filename. */
  readonly reference: string
  readonly digest?: string | undefined
  readonly action: 'get' | 'head'
  readonly cache: CacheResult
  readonly bytes: number
  readonly durationMs: number
  /** Upstream name (its URL origin, never credentials) when one was asked. */
  readonly upstream?: string | undefined
  readonly clientIp: string
}

/**
 * What a response served, as its handler states it; the action (the request's
 * method), bytes, duration and client are added when the response ends.
 */
export type ServedArtifact = Omit<PullEventFields, 'action' | 'bytes' | 'durationMs' | 'clientIp'>

/** Builds the event object with the protocol's own field names. */
export function buildPullEvent(fields: PullEventFields): Record<string, unknown> {
  const docker = fields.protocol === 'docker'
  return {
    event: 'pull',
    protocol: fields.protocol,
    [docker ? 'registry' : 'index']: fields.pool,
    [docker ? 'repository' : 'project']: fields.subject,
    [docker ? 'reference' : 'file']: fields.reference,
    digest: fields.digest,
    action: fields.action,
    cache: fields.cache,
    bytes: fields.bytes,
    durationMs: Math.round(fields.durationMs),
    upstream: fields.upstream,
    clientIp: fields.clientIp,
  }
}

/** Logs the pull event at info level; `node` and `time` come from the logger's base fields. */
export function logPullEvent(logger: Logger, fields: PullEventFields): void {
  logger.info(buildPullEvent(fields), 'pull')
}

/**
 * Everything one served artifact reports: the pull event, the cache result
 * counter and the bytes by source (cache for hits, upstream otherwise).
 */
export function recordPull(logger: Logger, metrics: Metrics, fields: PullEventFields): void {
  metrics.cacheRequests.inc({ protocol: fields.protocol, pool: fields.pool, result: fields.cache })
  const fromCache = fields.cache === 'hit' || fields.cache === 'stale'
  metrics.bytesServed.inc(
    { protocol: fields.protocol, source: fromCache ? 'cache' : 'upstream' },
    fields.bytes,
  )
  if (fromCache && fields.bytes > 0)
    metrics.bandwidthSaved.inc({ protocol: fields.protocol }, fields.bytes)
  if (fields.cache === 'stale') metrics.staleServed.inc({ protocol: fields.protocol })
  logPullEvent(logger, fields)
}
