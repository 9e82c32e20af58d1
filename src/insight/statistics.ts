/**
 * The questions an operator asks of the pull statistics: how much did the
 * cache save over the last hour, day or week, which repositories and projects
 * are pulled most, by how many clients. Answers are plain JSON-able objects
 * (the API serves them as they are) and cover every replica when the
 * metadata store is Redis. Pulls reach the store in batches, so an answer may
 * miss the last STATS_FLUSH_INTERVAL_MS of them.
 */
import {
  DAY_MS,
  STATS_HOURLY_RETENTION_MS,
  ZERO_COUNTS,
  addCounts,
  bucketStart,
  type Granularity,
  type StatsProtocol,
  type SubjectUsage,
  type UsageAnswer,
  type UsageCounts,
} from '../metadata/statistics.ts'
import type { MetadataStore } from '../metadata/store.ts'

/** The windows `summary` reports, by name. */
export const SUMMARY_WINDOWS = { '1h': 3_600_000, '24h': DAY_MS, '7d': 7 * DAY_MS } as const
export type WindowName = keyof typeof SUMMARY_WINDOWS
/** The longest window asked: the daily retention. */
export const MAX_WINDOW_MS = 90 * DAY_MS

export interface Pulls {
  readonly hit: number
  readonly miss: number
  readonly stale: number
  readonly revalidated: number
  readonly total: number
}

export interface Usage {
  readonly pulls: Pulls
  /** Share of pulls answered from the cache (hit or stale); null without pulls. */
  readonly hitRatio: number | null
  readonly bytesServed: number
  /** Bytes served from the cache: upstream traffic saved. */
  readonly bytesFromCache: number
  readonly bytesFromUpstream: number
  readonly clients: number
}

export type Summary = Readonly<Record<StatsProtocol | 'all', Usage>>

export type SortKey = 'pulls' | 'bytes' | 'last' | 'clients'
export const SORT_KEYS: readonly SortKey[] = ['pulls', 'bytes', 'last', 'clients']

export interface SubjectsQuery {
  readonly protocol?: StatsProtocol | undefined
  /** Only names starting with this. */
  readonly prefix?: string | undefined
  /** One row per repository/project, or per namespace (Docker organisation, PyPI index). */
  readonly rollup: 'subject' | 'namespace'
  readonly sort: SortKey
  readonly windowMs: number
  readonly limit: number
  readonly offset: number
}

export interface SubjectRow extends Usage {
  readonly protocol: StatsProtocol
  /** Registry or index. */
  readonly pool: string
  /** Repository or project; the namespace when rolled up. */
  readonly name: string
  readonly firstPulled: number
  readonly lastPulled: number
}

export interface SeriesPoint {
  readonly start: number
  readonly protocol: StatsProtocol
  /** `clients` is 0: distinct clients are not kept per bucket and protocol. */
  readonly usage: Usage
}

export class Statistics {
  constructor(
    private readonly metadata: MetadataStore,
    private readonly now: () => number,
  ) {}

  /** Totals per protocol and over both, for each of the SUMMARY_WINDOWS. */
  async summary(): Promise<Record<WindowName, Summary>> {
    const entries = await Promise.all(
      (Object.keys(SUMMARY_WINDOWS) as WindowName[]).map(
        async (name) => [name, await this.totals(SUMMARY_WINDOWS[name])] as const,
      ),
    )
    return Object.fromEntries(entries) as Record<WindowName, Summary>
  }

  /** Totals per protocol and over both for the last `windowMs`. */
  async totals(windowMs: number): Promise<Summary> {
    const answer = await this.#read(windowMs)
    const sum = (protocol?: StatsProtocol) =>
      answer.buckets
        .filter((b) => protocol === undefined || b.protocol === protocol)
        .reduce((total, b) => addCounts(total, b.counts), ZERO_COUNTS)
    return {
      all: usageOf(sum(), answer.clients.all),
      docker: usageOf(sum('docker'), answer.clients.docker),
      pypi: usageOf(sum('pypi'), answer.clients.pypi),
    }
  }

  /** Repositories and projects (or their namespaces), sorted, one page. */
  async subjects(query: SubjectsQuery): Promise<{ rows: SubjectRow[]; total: number }> {
    const answer = await this.#read(query.windowMs)
    let subjects = answer.subjects.filter(
      (s) =>
        (query.protocol === undefined || s.protocol === query.protocol) &&
        (query.prefix === undefined || s.subject.startsWith(query.prefix)),
    )
    if (query.rollup === 'namespace') subjects = rollUp(subjects)
    const rows = subjects.map(rowOf).sort(compareBy(query.sort))
    return { rows: rows.slice(query.offset, query.offset + query.limit), total: rows.length }
  }

  /** Totals per bucket and protocol over the last `windowMs`: hourly up to 7 days, daily beyond. */
  async series(windowMs: number): Promise<SeriesPoint[]> {
    const answer = await this.#read(windowMs)
    return answer.buckets.map((b) => ({
      start: b.start,
      protocol: b.protocol,
      usage: usageOf(b.counts, 0),
    }))
  }

  #read(windowMs: number): Promise<UsageAnswer> {
    const granularity: Granularity = windowMs <= STATS_HOURLY_RETENTION_MS ? 'hour' : 'day'
    // The bucket holding the window's start counts whole: "1 h" at 10:30 covers 09:00-10:30.
    const from = bucketStart(granularity, this.now() - Math.min(windowMs, MAX_WINDOW_MS))
    return this.metadata.usage({ granularity, from })
  }
}

function usageOf(counts: UsageCounts, clients: number): Usage {
  const total = counts.hit + counts.miss + counts.stale + counts.revalidated
  return {
    pulls: {
      hit: counts.hit,
      miss: counts.miss,
      stale: counts.stale,
      revalidated: counts.revalidated,
      total,
    },
    hitRatio: total === 0 ? null : (counts.hit + counts.stale) / total,
    bytesServed: counts.bytesServed,
    bytesFromCache: counts.bytesServed - counts.bytesUpstream,
    bytesFromUpstream: counts.bytesUpstream,
    clients,
  }
}

function rowOf(s: SubjectUsage): SubjectRow {
  return {
    protocol: s.protocol,
    pool: s.pool,
    name: s.subject,
    ...usageOf(s.counts, s.clients),
    firstPulled: s.firstPulled,
    lastPulled: s.lastPulled,
  }
}

/**
 * The namespace of a subject: a Docker repository's first path segment
 * (`library/nginx` -> `library`, `myorg/team/app` -> `myorg`), a PyPI
 * project's index. Distinct clients of a namespace are the most of its
 * subjects' (a lower bound: their union is not kept per namespace).
 */
export function namespaceOf(s: { protocol: StatsProtocol; pool: string; subject: string }): string {
  if (s.protocol === 'pypi') return s.pool
  const slash = s.subject.indexOf('/')
  return slash === -1 ? s.subject : s.subject.slice(0, slash)
}

function rollUp(subjects: readonly SubjectUsage[]): SubjectUsage[] {
  const groups = new Map<string, SubjectUsage>()
  for (const s of subjects) {
    const name = namespaceOf(s)
    const id = `${s.protocol}\u001f${s.pool}\u001f${name}`
    const group = groups.get(id)
    groups.set(
      id,
      group
        ? {
            ...group,
            counts: addCounts(group.counts, s.counts),
            clients: Math.max(group.clients, s.clients),
            firstPulled: Math.min(group.firstPulled, s.firstPulled),
            lastPulled: Math.max(group.lastPulled, s.lastPulled),
          }
        : { ...s, subject: name },
    )
  }
  return [...groups.values()]
}

function compareBy(sort: SortKey): (a: SubjectRow, b: SubjectRow) => number {
  const value = (row: SubjectRow): number => {
    switch (sort) {
      case 'pulls':
        return row.pulls.total
      case 'bytes':
        return row.bytesServed
      case 'last':
        return row.lastPulled
      case 'clients':
        return row.clients
    }
  }
  // Largest first; ties by name so pages are stable.
  return (a, b) =>
    value(b) - value(a) || a.name.localeCompare(b.name) || a.pool.localeCompare(b.pool)
}
