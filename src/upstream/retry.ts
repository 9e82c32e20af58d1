/**
 * Retry timing: exponential backoff with full jitter (a random delay between 0
 * and min(max, base * 2^attempt)), so many clients retrying after one outage do
 * not arrive together; and the upstream's Retry-After (RFC 9110 §10.2.3).
 */

/** Delay before retry number `attempt` (0 for the first retry). */
export function backoffDelayMs(
  attempt: number,
  baseMs: number,
  maxMs: number,
  random: () => number = Math.random,
): number {
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.min(attempt, 30))
  return Math.floor(random() * ceiling)
}

/** Largest Retry-After honoured; a longer one means "not within this request". */
export const MAX_RETRY_AFTER_MS = 5 * 60_000

/** Milliseconds from a Retry-After header (delta-seconds or HTTP-date); undefined when absent or invalid. */
export function parseRetryAfterMs(
  value: string | string[] | undefined,
  now: number,
): number | undefined {
  const header = Array.isArray(value) ? value[0] : value
  if (header === undefined || header.trim() === '') return undefined
  const trimmed = header.trim()
  if (/^\d+$/.test(trimmed)) return Math.min(Number(trimmed) * 1000, MAX_RETRY_AFTER_MS)
  // HTTP-date only (e.g. "Wed, 21 Oct 2015 07:28:00 GMT"); Date.parse alone accepts "-1".
  const date = /^[A-Za-z]{3}, /.test(trimmed) ? Date.parse(trimmed) : Number.NaN
  if (Number.isNaN(date)) return undefined
  return Math.min(Math.max(0, date - now), MAX_RETRY_AFTER_MS)
}
