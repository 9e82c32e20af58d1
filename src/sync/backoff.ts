/**
 * Retries of one sync item: exponential backoff with full jitter (a pause
 * drawn between 0 and min(cap, base * 2^attempt)), so replicas and lists
 * retrying one failing mirror do not return in step. Only failures that may
 * pass are retried: an upstream down, rate-limiting or sending bad bytes;
 * "no such tag" or a bad requirement fails at once.
 */
import { outcomeOf } from '../errors.ts'

/** Attempts per item, the first included. */
export const SYNC_ATTEMPTS = 4
/** The first retry waits up to this long; each next one up to twice as long. */
export const SYNC_BACKOFF_BASE_MS = 1000
/** No retry waits longer. */
export const SYNC_BACKOFF_CAP_MS = 30_000

export interface Backoff {
  readonly attempts: number
  readonly baseMs: number
  readonly capMs: number
  /** Waits `ms` (injected: tests count the pauses instead of sitting through them). */
  readonly sleep: (ms: number) => Promise<void>
  /** In [0, 1). */
  readonly random: () => number
}

/** The pause before retry `attempt` (1 for the first retry). */
export function backoffDelay(backoff: Omit<Backoff, 'sleep'>, attempt: number): number {
  const ceiling = Math.min(backoff.capMs, backoff.baseMs * 2 ** (attempt - 1))
  return Math.floor(backoff.random() * ceiling)
}

export function retryable(error: unknown): boolean {
  const outcome = outcomeOf(error)
  // An error without a code (a socket reset surfacing raw) is worth another try too.
  return (
    outcome === 'unavailable' ||
    outcome === 'rate_limited' ||
    outcome === 'bad_upstream' ||
    outcome === 'internal'
  )
}

/** Runs `work` until it succeeds, fails for good, or runs out of attempts; `onRetry` hears each failure retried. */
export async function withRetries<T>(
  backoff: Backoff,
  work: () => Promise<T>,
  onRetry: (error: unknown, attempt: number, delayMs: number) => void,
  signal?: AbortSignal,
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await work()
    } catch (error) {
      if (attempt >= backoff.attempts || !retryable(error) || signal?.aborted) throw error
      const delay = backoffDelay(backoff, attempt)
      onRetry(error, attempt, delay)
      await backoff.sleep(delay)
    }
  }
}
