/**
 * The pull event: one structured log line per served artifact, the record an
 * operator greps or ships to a log store to see who pulled what from where.
 * Built here and nowhere else so every protocol logs the same fields.
 */
import type { Logger } from 'pino'
import type { Counter } from 'prom-client'
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

/** Per-protocol counters bound once: labelling them on every pull hashed the labels each time. */
interface Bound {
  readonly fromCache: Counter.Internal
  readonly fromUpstream: Counter.Internal
  readonly saved: Counter.Internal
  readonly stale: Counter.Internal
}
const boundCounters = new WeakMap<Metrics, Map<string, Bound>>()

function bound(metrics: Metrics, protocol: PullEventFields['protocol']): Bound {
  let byProtocol = boundCounters.get(metrics)
  if (!byProtocol) boundCounters.set(metrics, (byProtocol = new Map<string, Bound>()))
  let counters = byProtocol.get(protocol)
  if (!counters) {
    counters = {
      fromCache: metrics.bytesServed.labels({ protocol, source: 'cache' }),
      fromUpstream: metrics.bytesServed.labels({ protocol, source: 'upstream' }),
      saved: metrics.bandwidthSaved.labels({ protocol }),
      stale: metrics.staleServed.labels({ protocol }),
    }
    byProtocol.set(protocol, counters)
  }
  return counters
}

/**
 * Everything one served artifact reports: the pull event (built only when
 * info lines are logged), the cache result counter and the bytes by source
 * (cache for hits and stale answers, upstream otherwise).
 */
export function recordPull(logger: Logger, metrics: Metrics, fields: PullEventFields): void {
  metrics.cacheRequests.inc({ protocol: fields.protocol, pool: fields.pool, result: fields.cache })
  const counters = bound(metrics, fields.protocol)
  const fromCache = fields.cache === 'hit' || fields.cache === 'stale'
  if (fromCache) {
    counters.fromCache.inc(fields.bytes)
    counters.saved.inc(fields.bytes)
    if (fields.cache === 'stale') counters.stale.inc()
  } else counters.fromUpstream.inc(fields.bytes)
  if (logger.isLevelEnabled('info')) logPullEvent(logger, fields)
}
