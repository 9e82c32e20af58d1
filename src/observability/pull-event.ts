/**
 * The pull event: one structured log line per served artifact, the record an
 * operator greps or ships to a log store to see who pulled what from where.
 * Built here and nowhere else so every protocol logs the same fields.
 */
import type { Logger } from 'pino'
import type { CounterSeries } from './batched-counter.ts'
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

/** The counters one protocol's pulls move, with their labels bound once. */
interface ProtocolCounters {
  readonly fromCache: CounterSeries
  readonly fromUpstream: CounterSeries
  readonly saved: CounterSeries
  readonly stale: CounterSeries
  /** cache_requests_total per pool and result; pools come from the config, so this stays small. */
  readonly results: Map<string, Readonly<Record<CacheResult, CounterSeries>>>
}

/**
 * Records pulls into the metrics and the log. Counters are bound to their
 * labels once (per protocol, and per pool for the cache result): labelling on
 * every pull hashed the label object each time, a visible share of a warm
 * tag-manifest GET.
 */
export class PullRecorder {
  readonly #protocols: Readonly<Record<PullEventFields['protocol'], ProtocolCounters>>

  constructor(
    private readonly logger: Logger,
    private readonly metrics: Metrics,
  ) {
    const bind = (protocol: PullEventFields['protocol']): ProtocolCounters => ({
      fromCache: metrics.bytesServed.series({ protocol, source: 'cache' }),
      fromUpstream: metrics.bytesServed.series({ protocol, source: 'upstream' }),
      saved: metrics.bandwidthSaved.series({ protocol }),
      stale: metrics.staleServed.series({ protocol }),
      results: new Map(),
    })
    this.#protocols = { docker: bind('docker'), pypi: bind('pypi') }
  }

  /**
   * Everything one served artifact reports: the pull event (built only when
   * info lines are logged), the cache result counter and the bytes by source
   * (cache for hits and stale answers, upstream otherwise).
   */
  record(fields: PullEventFields): void {
    const counters = this.#protocols[fields.protocol]
    this.#result(counters, fields).inc()
    if (fields.cache === 'hit' || fields.cache === 'stale') {
      counters.fromCache.inc(fields.bytes)
      counters.saved.inc(fields.bytes)
      if (fields.cache === 'stale') counters.stale.inc()
    } else counters.fromUpstream.inc(fields.bytes)
    if (this.logger.isLevelEnabled('info')) logPullEvent(this.logger, fields)
  }

  #result(counters: ProtocolCounters, fields: PullEventFields): CounterSeries {
    let byResult = counters.results.get(fields.pool)
    if (!byResult) {
      const { protocol, pool } = fields
      const bind = (result: CacheResult) =>
        this.metrics.cacheRequests.series({ protocol, pool, result })
      byResult = {
        hit: bind('hit'),
        miss: bind('miss'),
        stale: bind('stale'),
        revalidated: bind('revalidated'),
      }
      counters.results.set(pool, byResult)
    }
    return byResult[fields.cache]
  }
}
