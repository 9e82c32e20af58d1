/**
 * Which mirror to try first. `ordered` keeps the configured order (what an
 * operator who ranks mirrors by hand wants). `fastest` ranks by an estimate of
 * the time a typical transfer would take on each mirror, from exponentially
 * weighted averages of time-to-first-byte and throughput, and sends a small
 * share of requests to another mirror first so a mirror that got faster (or was
 * never measured) is noticed. Mirrors whose circuit is open go last.
 */

/** Weight of the newest sample in the moving averages. */
const EWMA_ALPHA = 0.3
/** Share of requests that explore a mirror other than the best one. */
export const EXPLORE_SHARE = 0.1
/** Transfer size the ranking optimises for (a typical layer or wheel). */
const TYPICAL_BYTES = 8 * 1024 * 1024
/** Throughput samples from bodies smaller than this say more about latency than bandwidth. */
export const MIN_THROUGHPUT_SAMPLE_BYTES = 256 * 1024

export type SelectionPolicy = 'ordered' | 'fastest'

/** The last failure of a mirror, as the API shows it: a reason and a status, never a URL or header. */
export interface LastFailure {
  readonly reason: string
  readonly status?: number | undefined
  /** ms since the epoch */
  readonly at: number
}

/** Moving averages and totals for one mirror. */
export class MirrorStats {
  ttfbMs: number | undefined
  bytesPerMs: number | undefined
  /** Attempts sent (every outcome). */
  requests = 0
  /** Attempts and transfers that failed (the breaker's failures). */
  failures = 0
  /** Body bytes received in fills. */
  bytes = 0
  lastFailure: LastFailure | undefined

  recordFailure(failure: LastFailure): void {
    this.failures++
    this.lastFailure = failure
  }

  recordTtfb(ms: number): void {
    this.ttfbMs = ewma(this.ttfbMs, Math.max(ms, 0))
  }

  recordTransfer(bytes: number, ms: number): void {
    this.bytes += bytes
    if (bytes < MIN_THROUGHPUT_SAMPLE_BYTES || ms <= 0) return
    this.bytesPerMs = ewma(this.bytesPerMs, bytes / ms)
  }

  /** Estimated milliseconds for a typical transfer; undefined until measured. */
  estimateMs(): number | undefined {
    if (this.ttfbMs === undefined) return undefined
    return this.ttfbMs + (this.bytesPerMs ? TYPICAL_BYTES / this.bytesPerMs : 0)
  }
}

function ewma(previous: number | undefined, sample: number): number {
  return previous === undefined ? sample : previous + EWMA_ALPHA * (sample - previous)
}

export interface Rankable {
  readonly stats: MirrorStats
  /** False while the mirror's circuit is open. */
  isAvailable(): boolean
}

/** The order in which to try `mirrors` (given in configured order) for one request. */
export function rankMirrors<M extends Rankable>(
  mirrors: readonly M[],
  policy: SelectionPolicy,
  random: () => number = Math.random,
): M[] {
  const available = mirrors.filter((m) => m.isAvailable())
  const unavailable = mirrors.filter((m) => !m.isAvailable())
  if (policy === 'ordered' || available.length < 2) return [...available, ...unavailable]

  // Unmeasured mirrors first (in configured order) so each gets measured; then fastest first.
  const ranked = available
    .map((mirror, index) => ({ mirror, index, estimate: mirror.stats.estimateMs() }))
    .sort((a, b) => {
      if (a.estimate === undefined || b.estimate === undefined) {
        if (a.estimate === b.estimate) return a.index - b.index
        return a.estimate === undefined ? -1 : 1
      }
      return a.estimate - b.estimate || a.index - b.index
    })
    .map((entry) => entry.mirror)
  if (random() < EXPLORE_SHARE) {
    const pick = 1 + Math.floor(random() * (ranked.length - 1))
    const [explored] = ranked.splice(pick, 1)
    if (explored) ranked.unshift(explored)
  }
  return [...ranked, ...unavailable]
}
