/**
 * Aggregates pull events in memory and flushes them to the metadata store in
 * batches, so no store write sits on a request's path: `record` only bumps
 * counters in a map (it runs on every warm tag-manifest GET, thousands a
 * second). A flush that fails keeps its batch for the next one, up to
 * STATS_MAX_PENDING_SUBJECTS subject-hours; past that, new subjects are
 * dropped and counted until the store answers again.
 */
import type { ArtifactReference, MetadataStore } from '../metadata/store.ts'
import { HOUR_MS, type UsageDelta } from '../metadata/statistics.ts'
import type { Logger } from '../observability/logger.ts'
import type { Metrics } from '../observability/metrics.ts'
import type { PullEventFields } from '../observability/pull-event.ts'

/** How often pending statistics go to the metadata store. */
export const STATS_FLUSH_INTERVAL_MS = 5_000
/** Subject-hours held between flushes at most (a few hundred bytes each). */
export const STATS_MAX_PENDING_SUBJECTS = 20_000
/** Distinct client addresses kept per subject-hour between flushes; more are not counted. */
export const STATS_MAX_PENDING_CLIENTS = 1_000
/** Artifact references (digest, subject, tag or file) held between flushes at most. */
export const STATS_MAX_PENDING_REFERENCES = 20_000

interface Pending {
  readonly hour: number
  readonly protocol: PullEventFields['protocol']
  readonly pool: string
  readonly subject: string
  hit: number
  miss: number
  stale: number
  revalidated: number
  bytesServed: number
  bytesUpstream: number
  readonly clients: Set<string>
  lastPulled: number
  /** Digest -> tags or file names it was asked by ('' for by digest). */
  readonly references: Map<string, Set<string>>
}

export interface PullStatisticsDeps {
  readonly metadata: MetadataStore
  readonly logger: Logger
  readonly metrics: Metrics
  readonly now: () => number
  readonly flushIntervalMs?: number
}

export class PullStatistics {
  #pending = new Map<string, Pending>()
  /** The subject-hour the last pull went to: a run of pulls of one image skips the key and lookup. */
  #last: Pending | undefined
  /** References of a flush that failed, for the next one. */
  #references: ArtifactReference[] = []
  /** References pending in all subject-hours (bounded by STATS_MAX_PENDING_REFERENCES). */
  #referenceCount = 0
  #timer: NodeJS.Timeout | undefined
  #flushing: Promise<void> | undefined
  #failing = false

  constructor(private readonly deps: PullStatisticsDeps) {}

  /** Flushes every `flushIntervalMs` from now on. */
  start(): void {
    this.#timer ??= setInterval(() => {
      void this.flush()
    }, this.deps.flushIntervalMs ?? STATS_FLUSH_INTERVAL_MS).unref()
  }

  /**
   * Counts one served artifact. Only GETs are pulls: a HEAD asks whether
   * something is there (Docker asks one before each blob it already has).
   */
  record(event: PullEventFields): void {
    if (event.action !== 'get') return
    const now = this.deps.now()
    const hour = now - (now % HOUR_MS)
    let pending = this.#last
    if (
      pending === undefined ||
      pending.hour !== hour ||
      pending.subject !== event.subject ||
      pending.pool !== event.pool ||
      pending.protocol !== event.protocol
    )
      pending = this.#pendingFor(hour, event, now)
    if (pending === undefined) return
    this.#last = pending
    pending[event.cache]++
    pending.bytesServed += event.bytes
    if (event.cache === 'miss' || event.cache === 'revalidated')
      pending.bytesUpstream += event.bytes
    if (pending.clients.size < STATS_MAX_PENDING_CLIENTS) pending.clients.add(event.clientIp)
    pending.lastPulled = now
    // Which artifact this subject served, by tag or file name (none when asked by digest):
    // kept on the subject-hour, so a warm repeat is one lookup and no new string.
    const digest = event.digest
    if (digest !== undefined && this.#referenceCount < STATS_MAX_PENDING_REFERENCES) {
      let references = pending.references.get(digest)
      if (!references) pending.references.set(digest, (references = new Set()))
      const reference = event.reference === digest ? '' : event.reference
      if (!references.has(reference)) {
        references.add(reference)
        this.#referenceCount++
      }
    }
  }

  /** The subject-hour of `event`, created if new; undefined (counted) when too many are pending. */
  #pendingFor(hour: number, event: PullEventFields, now: number): Pending | undefined {
    const key = `${hour}\u001f${event.protocol}\u001f${event.pool}\u001f${event.subject}`
    let pending = this.#pending.get(key)
    if (pending) return pending
    if (this.#pending.size >= STATS_MAX_PENDING_SUBJECTS) {
      this.deps.metrics.statisticsDropped.inc()
      return undefined
    }
    pending = {
      hour,
      protocol: event.protocol,
      pool: event.pool,
      subject: event.subject,
      hit: 0,
      miss: 0,
      stale: 0,
      revalidated: 0,
      bytesServed: 0,
      bytesUpstream: 0,
      clients: new Set(),
      lastPulled: now,
      references: new Map(),
    }
    this.#pending.set(key, pending)
    return pending
  }

  /** Writes what is pending; resolves when done (a failure is logged and kept for the next flush). */
  async flush(): Promise<void> {
    // One flush at a time: a second caller waits for the running one, then flushes what came since.
    while (this.#flushing) await this.#flushing
    if (this.#pending.size === 0 && this.#references.length === 0) return
    const batch = this.#pending
    const references = this.#references
    this.#pending = new Map()
    this.#last = undefined
    this.#references = []
    this.#referenceCount = 0
    for (const p of batch.values())
      for (const [digest, names] of p.references)
        for (const name of names)
          references.push({
            digest,
            protocol: p.protocol,
            pool: p.pool,
            subject: p.subject,
            reference: name === '' ? undefined : name,
          })
    // Taken out: a batch kept after a failed write must not send them twice.
    for (const p of batch.values()) p.references.clear()
    this.#flushing = this.#write(batch, references).finally(() => {
      this.#flushing = undefined
    })
    await this.#flushing
  }

  /** Stops the timer and flushes a last time. */
  async close(): Promise<void> {
    clearInterval(this.#timer)
    this.#timer = undefined
    await this.flush()
  }

  async #write(batch: Map<string, Pending>, references: ArtifactReference[]): Promise<void> {
    const deltas: UsageDelta[] = []
    for (const p of batch.values())
      deltas.push({
        hour: p.hour,
        protocol: p.protocol,
        pool: p.pool,
        subject: p.subject,
        counts: {
          hit: p.hit,
          miss: p.miss,
          stale: p.stale,
          revalidated: p.revalidated,
          bytesServed: p.bytesServed,
          bytesUpstream: p.bytesUpstream,
        },
        clients: [...p.clients],
        lastPulled: p.lastPulled,
      })
    let written = false
    try {
      if (deltas.length > 0) await this.deps.metadata.addUsage(deltas)
      written = true
      await this.deps.metadata.addReferences(references)
      if (this.#failing)
        this.deps.logger.info({ subjects: deltas.length }, 'statistics stored again')
      this.#failing = false
    } catch (error) {
      if (!this.#failing)
        this.deps.logger.warn(
          { err: error, subjects: deltas.length },
          'could not store pull statistics; keeping them for the next flush',
        )
      this.#failing = true
      // Counts already written are not kept (they would count twice); references always are.
      if (!written) this.#keep(batch)
      this.#references = references.slice(0, STATS_MAX_PENDING_REFERENCES)
    }
  }

  /** Puts a batch that could not be written back in front of what came since. */
  #keep(batch: Map<string, Pending>): void {
    for (const [key, later] of this.#pending) {
      const earlier = batch.get(key)
      if (!earlier) {
        if (batch.size >= STATS_MAX_PENDING_SUBJECTS) {
          this.deps.metrics.statisticsDropped.inc()
          continue
        }
        batch.set(key, later)
        continue
      }
      earlier.hit += later.hit
      earlier.miss += later.miss
      earlier.stale += later.stale
      earlier.revalidated += later.revalidated
      earlier.bytesServed += later.bytesServed
      earlier.bytesUpstream += later.bytesUpstream
      for (const client of later.clients)
        if (earlier.clients.size < STATS_MAX_PENDING_CLIENTS) earlier.clients.add(client)
      earlier.lastPulled = Math.max(earlier.lastPulled, later.lastPulled)
      for (const [digest, names] of later.references) {
        const kept = earlier.references.get(digest)
        if (kept) for (const name of names) kept.add(name)
        else earlier.references.set(digest, names)
      }
    }
    this.#pending = batch
    this.#last = undefined
  }
}
