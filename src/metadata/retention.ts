/**
 * How long the metadata store keeps a record nobody uses: index pages, cached
 * documents (tag lists, project lists) and tag records. Every read and every
 * write counts as a use.
 *
 * These records are cheap to fetch again, but they are what stale-if-error
 * serves while the upstreams are down, so they are kept for a long multiple
 * of the longest freshness TTL and never less than a week:
 *
 *   retention = max(RECORD_RETENTION_TTL_MULTIPLE x longest TTL, RECORD_RETENTION_FLOOR_MS)
 *
 * With the default TTLs (tags 5 min, pages 10 min) that is the floor, 7 days. A
 * record used at least once per TTL is never collected (a read refreshes its
 * last use, and so does the revalidation that rewrites it), a record served
 * stale during an outage is read on every request, and one last used on
 * Friday still answers during Monday's outage.
 */

/** Retention in multiples of the longest configured TTL. */
export const RECORD_RETENTION_TTL_MULTIPLE = 100
/** Shortest retention, whatever the TTLs (7 days). */
export const RECORD_RETENTION_FLOOR_MS = 7 * 24 * 60 * 60 * 1000
/**
 * A read refreshes a record's stored last use only when the stored one is
 * older than retention / RECORD_TOUCH_FRACTION: a busy record then costs no
 * write per read, and its recorded last use is never off by more than that.
 */
export const RECORD_TOUCH_FRACTION = 8

/** How often each store collects unused records on its own. */
export const RECORD_SWEEP_INTERVAL_MS = 60 * 60 * 1000

/** The retention for the longest TTL (ms) of the records kept. */
export function recordRetentionMs(longestTtlMs: number): number {
  const multiple = Number.isFinite(longestTtlMs) ? RECORD_RETENTION_TTL_MULTIPLE * longestTtlMs : 0
  return Math.max(multiple, RECORD_RETENTION_FLOOR_MS)
}
