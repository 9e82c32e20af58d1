/**
 * A pool of upstream mirrors for one Docker registry or PyPI index. `request`
 * tries mirrors in the order the selection policy gives, skipping open circuits;
 * connection errors, timeouts, 5xx and 429 move to the next mirror; after a full
 * pass it backs off (full jitter, honouring Retry-After) and goes again, bounded
 * by `retry.attempts` passes and the `retry.budget` time. Every other status is
 * sorted here: the caller's `expect` is returned, the rest raised as typed errors.
 */
import { passUpstreamGate } from './request-gate.ts'
import type { IncomingHttpHeaders } from 'node:http'
import { setTimeout as sleep } from 'node:timers/promises'
import type { PoolConfig } from '../config/schema.ts'
import { logUrlPath, type Logger } from '../observability/logger.ts'
import type { Metrics } from '../observability/metrics.ts'
import {
  AttemptError,
  allRateLimited,
  UpstreamAuthError,
  UpstreamRateLimitedError,
  UpstreamNotFoundError,
  UpstreamStatusError,
  UpstreamOfflineError,
  UpstreamUnavailableError,
  type AttemptFailure,
} from './errors.ts'
import { Mirror, type MirrorNetwork, type MirrorResponse } from './mirror.ts'
import { backoffDelayMs } from './retry.ts'
import { rankMirrors, type LastFailure, type SelectionPolicy } from './selection.ts'

export interface UpstreamRequest {
  /** Path relative to each mirror's base URL (`v2/library/busybox/manifests/latest`, `requests/`). */
  readonly path: string
  readonly method?: 'GET' | 'HEAD'
  readonly headers?: Readonly<Record<string, string>>
  /** Bearer scope hint for token-protected registries. */
  readonly authScope?: string
  /** `document`: small bodies under the whole-request ceiling; `blob`: only the idle timeout applies. */
  readonly kind: 'document' | 'blob'
  /** The statuses the caller can use; any other is raised (see `request`). */
  readonly expect: readonly number[]
  /** Ask for the body from this byte on (`Range: bytes=N-`). */
  readonly rangeStart?: number
  /**
   * Immutable content (by digest) may exist on one mirror and not another: a 404
   * or 410 then moves on, and is the answer only when every mirror says so.
   */
  readonly tryNextOnNotFound?: boolean
  /** Mirrors not to use for this request (e.g. one that just sent corrupt bytes). */
  readonly exclude?: ReadonlySet<Mirror>
  /** Mirror to try first (resume on the same mirror). */
  readonly prefer?: Mirror
  /** Mirrors to try only after the others (e.g. one whose transfer just broke). */
  readonly avoid?: ReadonlySet<Mirror>
  readonly signal?: AbortSignal
}

export interface UpstreamResponse extends MirrorResponse {
  readonly mirror: Mirror
  /** Milliseconds from sending to response headers. */
  readonly ttfbMs: number
}

export interface PoolDeps {
  readonly logger: Logger
  readonly metrics: Metrics
  readonly now?: () => number
  readonly random?: () => number
  /** DNS and TLS trust for every mirror (tests inject their CA and DNS answers). */
  readonly network?: MirrorNetwork
  /** While this says true, no mirror is asked (offline mode). */
  readonly offline?: { readonly on: boolean }
}

/** Statuses that say the content is not on the mirror. */
const NOT_FOUND: ReadonlySet<number> = new Set([404, 410])

export class UpstreamPool {
  readonly name: string
  readonly mirrors: readonly Mirror[]
  readonly #policy: SelectionPolicy
  readonly #retry: PoolConfig['retry']
  readonly #logger: Logger
  readonly #metrics: Metrics
  readonly #now: () => number
  readonly #random: () => number
  readonly #offline: { readonly on: boolean } | undefined

  constructor(config: PoolConfig, deps: PoolDeps) {
    this.name = config.name
    this.#policy = config.selection
    this.#retry = config.retry
    this.#metrics = deps.metrics
    this.#now = deps.now ?? Date.now
    this.#random = deps.random ?? Math.random
    this.#offline = deps.offline
    this.#logger = deps.logger.child({ component: 'upstream', pool: config.name })
    this.mirrors = config.upstreams.map(
      (upstream) =>
        new Mirror({
          url: upstream.url,
          credentials:
            upstream.username !== undefined && upstream.password !== undefined
              ? { username: upstream.username, password: upstream.password }
              : undefined,
          timeouts: {
            connectMs: config.timeouts.connect,
            headersMs: config.timeouts.headers,
            bodyIdleMs: config.timeouts.bodyIdle,
            documentMs: config.timeouts.document,
          },
          breaker: { failures: config.breaker.failures, cooldownMs: config.breaker.cooldown },
          redirectHosts: upstream.redirectHosts,
          ...(deps.network ? { network: deps.network } : {}),
          now: this.#now,
          logger: this.#logger,
          onRefused: (mirror, refusal) => {
            this.#metrics.upstreamRedirectsRefused.inc({
              pool: this.name,
              upstream: mirror.name,
              reason: refusal.reason,
            })
            this.#logger.warn(
              { upstream: mirror.name, reason: refusal.reason, target: refusal.target },
              'upstream redirect refused',
            )
          },
          onBreakerChange: (mirror, state) => {
            this.#metrics.upstreamCircuitOpen.set(
              { pool: this.name, upstream: mirror.name },
              state === 'open' ? 1 : 0,
            )
            this.#logger.warn({ upstream: mirror.name, state }, 'circuit breaker changed state')
          },
        }),
    )
  }

  /**
   * The first answer with a status in `req.expect`. Otherwise raises
   * UpstreamNotFoundError (404/410), UpstreamAuthError (401/403 after the token
   * dance), UpstreamStatusError (any other status a mirror answered),
   * UpstreamRateLimitedError (every mirror asked answered 429), or
   * UpstreamUnavailableError (every mirror failed: 5xx, timeouts...), or
   * UpstreamOfflineError (offline mode: no mirror asked), or the error of the
   * requesting client's upstream gate (upstream/request-gate.ts).
   */
  async request(req: UpstreamRequest): Promise<UpstreamResponse> {
    if (this.#offline?.on === true) throw new UpstreamOfflineError(this.name)
    await passUpstreamGate()
    const started = this.#now()
    const failures: AttemptFailure[] = []
    // The first mirror that said not found: the answer if no mirror has the content.
    let notFound: string | undefined
    for (let pass = 0; pass < this.#retry.attempts; pass++) {
      let retryAfterMs = 0
      const order = this.#order(req)
      for (const [i, mirror] of order.entries()) {
        if (!mirror.breaker.tryAcquire()) {
          failures.push({ upstream: mirror.name, reason: 'circuit_open' })
          continue
        }
        let res: UpstreamResponse
        try {
          res = await this.#attempt(mirror, req)
        } catch (error) {
          if (!(error instanceof AttemptError)) throw error
          failures.push(error.failure)
          retryAfterMs = Math.max(retryAfterMs, error.retryAfterMs ?? 0)
          if (i < order.length - 1) this.#metrics.upstreamFailovers.inc({ pool: this.name })
          continue
        }
        if (req.expect.includes(res.status)) return res
        await res.body.dump()
        if (NOT_FOUND.has(res.status)) {
          if (!req.tryNextOnNotFound) throw this.#notFound(req, mirror.name)
          notFound ??= mirror.name
          failures.push({ upstream: mirror.name, reason: 'status_404', status: res.status })
          continue
        }
        // An answer, not a failure: the mirror is healthy, and another would say the same.
        if (res.status === 401 || res.status === 403)
          throw new UpstreamAuthError(this.name, mirror.name, res.status)
        throw new UpstreamStatusError(this.name, mirror.name, res.status)
      }
      if (notFound !== undefined) throw this.#notFound(req, notFound)
      if (failures.length > 0 && failures.every((f) => f.reason === 'auth')) break
      const delay = Math.max(
        retryAfterMs,
        backoffDelayMs(pass, this.#retry.backoffBase, this.#retry.backoffMax, this.#random),
      )
      const last = pass === this.#retry.attempts - 1
      if (last || this.#now() - started + delay > this.#retry.budget) break
      this.#logger.info(
        { pass: pass + 1, delayMs: delay },
        'every mirror failed; retrying after backoff',
      )
      await sleep(delay, undefined, { signal: req.signal })
    }
    const auth = failures.find((f) => f.reason === 'auth')
    if (auth && failures.every((f) => f.reason === 'auth' || f.reason === 'circuit_open')) {
      throw new UpstreamAuthError(this.name, auth.upstream, auth.status ?? 401)
    }
    if (allRateLimited(failures)) throw new UpstreamRateLimitedError(this.name, failures)
    throw new UpstreamUnavailableError(this.name, failures)
  }

  #notFound(req: UpstreamRequest, upstream: string): UpstreamNotFoundError {
    return new UpstreamNotFoundError(this.name, logUrlPath(req.path), upstream)
  }

  #order(req: UpstreamRequest): Mirror[] {
    const eligible = rankMirrors(this.mirrors, this.#policy, this.#random).filter(
      (m) => !req.exclude?.has(m),
    )
    const avoid = req.avoid
    const ranked = avoid
      ? [...eligible.filter((m) => !avoid.has(m)), ...eligible.filter((m) => avoid.has(m))]
      : eligible
    if (req.prefer && !req.exclude?.has(req.prefer))
      return [req.prefer, ...ranked.filter((m) => m !== req.prefer)]
    return ranked
  }

  /** One attempt at one mirror, with metrics, breaker bookkeeping and a log line on failure. */
  async #attempt(mirror: Mirror, req: UpstreamRequest): Promise<UpstreamResponse> {
    const labels = { pool: this.name, upstream: mirror.name }
    const headers: Record<string, string> = { ...req.headers }
    if (req.rangeStart !== undefined && req.rangeStart > 0)
      headers.range = `bytes=${req.rangeStart}-`
    const timeout =
      req.kind === 'document' ? AbortSignal.timeout(mirror.timeouts.documentMs) : undefined
    const signal =
      timeout && req.signal ? AbortSignal.any([req.signal, timeout]) : (timeout ?? req.signal)
    const started = this.#now()
    mirror.stats.requests++
    try {
      const res = await mirror.send(req.path, {
        method: req.method ?? 'GET',
        headers,
        authScope: req.authScope,
        signal,
      })
      const ttfbMs = this.#now() - started
      if (res.status >= 500 || res.status === 429) {
        await res.body.dump()
        throw mirror.statusFailure(res.status, res.headers)
      }
      mirror.breaker.onSuccess()
      mirror.stats.recordTtfb(ttfbMs)
      this.#metrics.upstreamRequestDuration.observe({ ...labels, outcome: 'ok' }, ttfbMs / 1000)
      return { ...res, mirror, ttfbMs }
    } catch (error) {
      if (req.signal?.aborted) {
        mirror.breaker.release()
        throw error
      }
      const attempt =
        error instanceof AttemptError
          ? error
          : new AttemptError(
              { upstream: mirror.name, reason: timeout?.aborted ? 'timeout_document' : 'reset' },
              undefined,
              {
                cause: error,
              },
            )
      // Refused credentials say nothing about the mirror's health.
      if (attempt.failure.reason === 'auth') mirror.breaker.release()
      else mirror.breaker.onFailure()
      mirror.stats.recordFailure({
        reason: attempt.failure.reason,
        status: attempt.failure.status,
        at: this.#now(),
      })
      this.#metrics.upstreamErrors.inc({ ...labels, reason: attempt.failure.reason })
      this.#metrics.upstreamRequestDuration.observe(
        { ...labels, outcome: 'error' },
        (this.#now() - started) / 1000,
      )
      this.#logger.warn(
        {
          upstream: mirror.name,
          reason: attempt.failure.reason,
          status: attempt.failure.status,
          // Never the query: presigned file URLs carry their signature there.
          path: logUrlPath(req.path),
        },
        'upstream attempt failed',
      )
      throw attempt
    }
  }

  /** Records a body-phase failure (stall, cut, corrupt bytes) against a mirror. */
  recordBodyFailure(mirror: Mirror, reason: AttemptFailure['reason']): void {
    mirror.breaker.onFailure()
    mirror.stats.recordFailure({ reason, at: this.#now() })
    this.#metrics.upstreamErrors.inc({ pool: this.name, upstream: mirror.name, reason })
  }

  /** Each mirror's health as plain data (for the API): no credentials, no URLs beyond the origin and path. */
  snapshot(): MirrorSnapshot[] {
    return this.mirrors.map((mirror) => {
      const { stats, breaker } = mirror
      const url = new URL(mirror.name)
      url.username = ''
      url.password = ''
      return {
        pool: this.name,
        upstream: url.toString().replace(/\/+$/, ''),
        state:
          breaker.state === 'closed'
            ? 'healthy'
            : breaker.state === 'open'
              ? 'breaker open'
              : 'half-open',
        retryInMs: breaker.retryInMs(),
        ttfbMs: stats.ttfbMs === undefined ? null : Math.round(stats.ttfbMs),
        bytesPerSecond: stats.bytesPerMs === undefined ? null : Math.round(stats.bytesPerMs * 1000),
        requests: stats.requests,
        failures: stats.failures,
        errorRate: stats.requests === 0 ? null : Math.min(1, stats.failures / stats.requests),
        lastFailure: stats.lastFailure ?? null,
        bytesFetched: stats.bytes,
      }
    })
  }

  async close(): Promise<void> {
    await Promise.all(this.mirrors.map((m) => m.close()))
  }
}

export interface MirrorSnapshot {
  readonly pool: string
  readonly upstream: string
  readonly state: 'healthy' | 'breaker open' | 'half-open'
  readonly retryInMs: number
  readonly ttfbMs: number | null
  readonly bytesPerSecond: number | null
  readonly requests: number
  readonly failures: number
  readonly errorRate: number | null
  readonly lastFailure: LastFailure | null
  readonly bytesFetched: number
}

export type { IncomingHttpHeaders }
