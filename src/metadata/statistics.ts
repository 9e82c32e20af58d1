/**
 * Pull statistics as the metadata store keeps them: counters per time bucket
 * and per subject (a Docker repository or a PyPI project, under its registry
 * or index), distinct clients per bucket and subject, and when each subject
 * was first and last pulled. Both stores hold the same model; the aggregation
 * and the questions asked of it live in `src/insight/`.
 *
 * Buckets: an hour kept STATS_HOURLY_RETENTION_MS, a day kept
 * STATS_DAILY_RETENTION_MS; older buckets are dropped by the store.
 */

export const HOUR_MS = 3_600_000
export const DAY_MS = 86_400_000
/** Hourly buckets are kept 7 days. */
export const STATS_HOURLY_RETENTION_MS = 7 * DAY_MS
/** Daily buckets are kept 90 days; a subject not pulled for as long is forgotten too. */
export const STATS_DAILY_RETENTION_MS = 90 * DAY_MS

export type Granularity = 'hour' | 'day'
export type StatsProtocol = 'docker' | 'pypi'

export interface SubjectKey {
  readonly protocol: StatsProtocol
  /** Registry or index name. */
  readonly pool: string
  /** Repository or project. */
  readonly subject: string
}

/** What one bucket counts for one subject. */
export interface UsageCounts {
  readonly hit: number
  readonly miss: number
  readonly stale: number
  readonly revalidated: number
  /** Body bytes sent to clients. */
  readonly bytesServed: number
  /** Of those, bytes that came from an upstream (misses and revalidations). */
  readonly bytesUpstream: number
}

/** One subject's pulls within one hour, as an aggregating replica flushes them. */
export interface UsageDelta extends SubjectKey {
  /** Start of the hour (ms since the epoch, a multiple of HOUR_MS). */
  readonly hour: number
  readonly counts: UsageCounts
  /** Client addresses seen (each once). */
  readonly clients: readonly string[]
  /** When the last of these pulls happened (ms since the epoch). */
  readonly lastPulled: number
}

export interface UsageQuery {
  readonly granularity: Granularity
  /** Buckets starting at or after this (ms since the epoch). */
  readonly from: number
}

/** A subject's pulls summed over the buckets of a query. */
export interface SubjectUsage extends SubjectKey {
  readonly counts: UsageCounts
  /** Distinct client addresses over those buckets (an estimate past a few hundred). */
  readonly clients: number
  /** First pull the store remembers (ms), within the daily retention. */
  readonly firstPulled: number
  readonly lastPulled: number
}

/** The totals of one bucket, per protocol, for a chart. */
export interface BucketUsage {
  readonly start: number
  readonly protocol: StatsProtocol
  readonly counts: UsageCounts
}

export interface UsageAnswer {
  readonly subjects: SubjectUsage[]
  readonly buckets: BucketUsage[]
  /** Distinct clients over the query's buckets, per protocol and over both (`all`). */
  readonly clients: Readonly<Record<StatsProtocol | 'all', number>>
}

export const ZERO_COUNTS: UsageCounts = {
  hit: 0,
  miss: 0,
  stale: 0,
  revalidated: 0,
  bytesServed: 0,
  bytesUpstream: 0,
}

export const COUNT_NAMES = [
  'hit',
  'miss',
  'stale',
  'revalidated',
  'bytesServed',
  'bytesUpstream',
] as const satisfies readonly (keyof UsageCounts)[]

export function addCounts(a: UsageCounts, b: UsageCounts): UsageCounts {
  return {
    hit: a.hit + b.hit,
    miss: a.miss + b.miss,
    stale: a.stale + b.stale,
    revalidated: a.revalidated + b.revalidated,
    bytesServed: a.bytesServed + b.bytesServed,
    bytesUpstream: a.bytesUpstream + b.bytesUpstream,
  }
}

/** Counts from a record that may lack some (a file or hash from another version): 0 for those. */
export function countsFrom(record: object): UsageCounts {
  const read = (name: keyof UsageCounts) =>
    Number((record as Partial<Record<keyof UsageCounts, unknown>>)[name]) || 0
  return {
    hit: read('hit'),
    miss: read('miss'),
    stale: read('stale'),
    revalidated: read('revalidated'),
    bytesServed: read('bytesServed'),
    bytesUpstream: read('bytesUpstream'),
  }
}

export function bucketSize(granularity: Granularity): number {
  return granularity === 'hour' ? HOUR_MS : DAY_MS
}

/** Start of the bucket holding `time`. */
export function bucketStart(granularity: Granularity, time: number): number {
  const size = bucketSize(granularity)
  return Math.floor(time / size) * size
}

export function retentionOf(granularity: Granularity): number {
  return granularity === 'hour' ? STATS_HOURLY_RETENTION_MS : STATS_DAILY_RETENTION_MS
}

/** One string for a subject (its parts joined by a separator no name contains). */
export function subjectId(key: SubjectKey): string {
  return `${key.protocol}\u001f${key.pool}\u001f${key.subject}`
}

export function parseSubjectId(id: string): SubjectKey | undefined {
  const [protocol, pool, subject] = id.split('\u001f')
  if ((protocol !== 'docker' && protocol !== 'pypi') || pool === undefined || subject === undefined)
    return undefined
  return { protocol, pool, subject }
}

/** References kept per artifact at most; a layer shared by more repositories lists the first ones. */
export const MAX_REFERENCES_PER_ARTIFACT = 50

/**
 * A subject that served an artifact: the repository (and tag, for a manifest
 * pulled by tag) or project (and file name) a digest was pulled through.
 */
export interface ArtifactReference extends SubjectKey {
  readonly digest: string
  /** The tag or file name it was asked by; absent when asked by digest. */
  readonly reference?: string | undefined
}

export function referenceId(ref: ArtifactReference): string {
  return `${subjectId(ref)}\u001f${ref.reference ?? ''}`
}

export function parseReferenceId(digest: string, id: string): ArtifactReference | undefined {
  const cut = id.lastIndexOf('\u001f')
  const key = parseSubjectId(id.slice(0, cut))
  if (!key || cut === -1) return undefined
  const reference = id.slice(cut + 1)
  return { ...key, digest, ...(reference === '' ? {} : { reference }) }
}
