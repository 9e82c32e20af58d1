/**
 * Offline mode: while on, no upstream is contacted by any pool; what is cached
 * keeps being served (tags and pages past their TTL stale) and a miss answers
 * 503 saying the cache is offline. Set at start from `offline` (config,
 * PULLTHROUGH_OFFLINE, `serve --offline`) and switched at runtime through the
 * admin API; each replica holds its own switch.
 */
import type { Logger } from '../observability/logger.ts'
import type { Metrics } from '../observability/metrics.ts'

export class OfflineSwitch {
  #on: boolean

  constructor(
    on: boolean,
    private readonly deps: { readonly logger: Logger; readonly metrics: Metrics },
  ) {
    this.#on = on
    deps.metrics.offline.set(on ? 1 : 0)
    if (on) deps.logger.warn('offline: no upstream will be contacted')
  }

  get on(): boolean {
    return this.#on
  }

  /** Switches; `by` says who asked, for the log line. */
  set(on: boolean, by: string): void {
    if (on === this.#on) return
    this.#on = on
    this.deps.metrics.offline.set(on ? 1 : 0)
    this.deps.logger.warn(
      { by },
      on ? 'offline: no upstream will be contacted' : 'online: upstreams are contacted again',
    )
  }
}
