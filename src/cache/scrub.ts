/**
 * The scrub: re-hashes every stored blob at a bounded rate and quarantines
 * those that no longer match their digest (removed with their record, so the
 * next request fetches them again), catching silent corruption on disk before
 * a client meets it. Runs on a schedule (`scrub.interval`) and when asked
 * (`POST /-/api/v1/verify`, `pullthrough verify`); one run at a time per
 * cache, through a lease in the metadata store that replicas share.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import type { MetadataStore } from '../metadata/store.ts'
import type { Logger } from '../observability/logger.ts'
import type { Metrics } from '../observability/metrics.ts'
import type { BlobCheck, BlobStorage } from '../storage/blob-storage.ts'
import { quarantine } from './quarantine.ts'

export const SCRUB_LEASE = 'scrub'
/** How long a scrub's lease lasts without renewal; renewed every third of it while running. */
export const SCRUB_LEASE_TTL_MS = 60_000
/** How often the schedule checks whether a scrub is due. */
export const SCRUB_CHECK_MS = 60_000
/** Where the last finished run is recorded, so a restart does not reset the schedule. */
const LAST_RUN = { namespace: '_jobs', key: 'scrub' } as const
/** Digests of quarantined blobs kept in the status. */
const MAX_LISTED_CORRUPT = 100

export type ScrubTrigger = 'schedule' | 'api'

export interface ScrubCounts {
  readonly blobs: number
  readonly bytes: number
  readonly ok: number
  readonly corrupt: number
  /** Removed or replaced by a new fill while the scrub ran: nothing to check. */
  readonly skipped: number
}

export interface ScrubRun extends ScrubCounts {
  readonly trigger: ScrubTrigger
  readonly startedAt: number
  readonly finishedAt: number | null
  /** Bytes per second the run reads at most. */
  readonly rate: number
  /** Blobs and bytes on disk when the run started. */
  readonly total: { readonly blobs: number; readonly bytes: number }
  /** Digests quarantined by this run (the first MAX_LISTED_CORRUPT). */
  readonly corruptDigests: readonly string[]
  /** Why the run stopped early, if it did. */
  readonly error: string | null
}

export interface ScrubStatus {
  readonly running: boolean
  /** The run in progress, else the last one this replica ran. */
  readonly run: ScrubRun | null
  /** When the next scheduled run is due; null with the schedule off. */
  readonly nextDue: number | null
}

export interface ScrubDeps {
  /** Whether this replica leads scheduled work (metadata/leadership.ts); absent: it does. */
  readonly isLeader?: () => boolean
  readonly blobs: BlobStorage
  readonly metadata: MetadataStore
  readonly metrics: Metrics
  readonly logger: Logger
  readonly now: () => number
  /** `scrub.interval` in ms; 0: no schedule. */
  readonly intervalMs: number
  /** `scrub.rate`, bytes per second. */
  readonly rate: number
  /** This replica, as the lease's owner. */
  readonly owner: string
}

/** Another run holds the lease: on this replica or another. */
export class ScrubBusyError extends Error {}

export class Scrubber {
  readonly #deps: ScrubDeps
  readonly #logger: Logger
  #run: MutableRun | undefined
  #running: Promise<void> | undefined
  #lastFinished: number | undefined
  #timer: NodeJS.Timeout | undefined
  readonly #abort = new AbortController()

  constructor(deps: ScrubDeps) {
    this.#deps = deps
    this.#logger = deps.logger.child({ component: 'scrub' })
  }

  /**
   * Starts the schedule (a no-op with `scrub.interval` 0). The first check
   * comes SCRUB_CHECK_MS after start: start-up does no scrub work at all.
   */
  startSchedule(checkMs = SCRUB_CHECK_MS): void {
    if (this.#deps.intervalMs <= 0) return
    this.#timer = setInterval(() => {
      void this.#scheduled()
    }, checkMs)
    this.#timer.unref()
  }

  status(): ScrubStatus {
    const run = this.#run
    return {
      running: this.#running !== undefined,
      run: run ? { ...run, corruptDigests: [...run.corruptDigests] } : null,
      nextDue:
        this.#deps.intervalMs > 0 && this.#lastFinished !== undefined
          ? this.#lastFinished + this.#deps.intervalMs
          : null,
    }
  }

  /**
   * Starts a run unless one is going (ScrubBusyError); resolves once it has
   * the lease and its totals, before it has checked anything.
   */
  async start(trigger: ScrubTrigger, rate = this.#deps.rate): Promise<ScrubStatus> {
    if (this.#running) throw new ScrubBusyError('a scrub is already running on this replica')
    const { metadata, owner } = this.#deps
    if (!(await metadata.acquireLease(SCRUB_LEASE, owner, { ttlMs: SCRUB_LEASE_TTL_MS })))
      throw new ScrubBusyError('another replica is scrubbing the store')
    let total
    try {
      total = await metadata.blobTotals()
    } catch (error) {
      await metadata.releaseLease(SCRUB_LEASE, owner).catch(() => undefined)
      throw error
    }
    const run: MutableRun = {
      trigger,
      startedAt: this.#deps.now(),
      finishedAt: null,
      rate,
      total: { blobs: total.count, bytes: total.bytes },
      blobs: 0,
      bytes: 0,
      ok: 0,
      corrupt: 0,
      skipped: 0,
      corruptDigests: [],
      error: null,
    }
    this.#run = run
    this.#deps.metrics.scrubRunning.set(1)
    this.#logger.info({ trigger, rate, blobs: total.count, bytes: total.bytes }, 'scrub started')
    this.#running = this.#scrub(run).finally(() => {
      this.#running = undefined
    })
    return this.status()
  }

  /** Resolves when the run in progress (if any) has ended. */
  async settled(): Promise<void> {
    await this.#running
  }

  /** Stops the schedule and the run in progress. */
  async close(): Promise<void> {
    clearInterval(this.#timer)
    this.#abort.abort()
    await this.#running
  }

  async #scheduled(): Promise<void> {
    try {
      if (this.#running || this.#abort.signal.aborted) return
      // Scheduled runs are the leader's; asked ones (the API) run anywhere.
      if (this.#deps.isLeader?.() === false) return
      this.#lastFinished ??= await this.#readLastFinished()
      if (this.#deps.now() < this.#lastFinished + this.#deps.intervalMs) return
      await this.start('schedule')
    } catch (error) {
      if (error instanceof ScrubBusyError) return
      this.#logger.warn({ err: error }, 'scheduled scrub could not start')
    }
  }

  /** When the last run finished; a cache never scrubbed starts counting now (it has little to check yet). */
  async #readLastFinished(): Promise<number> {
    const { metadata, now } = this.#deps
    const record = await metadata.getDocument(LAST_RUN.namespace, LAST_RUN.key)
    if (record) return record.fetchedAt
    const baseline = now()
    await metadata.putDocument(LAST_RUN.namespace, LAST_RUN.key, {
      fetchedAt: baseline,
      page: { baseline: true },
    })
    return baseline
  }

  async #scrub(run: MutableRun): Promise<void> {
    const { blobs, metadata, metrics, owner, now } = this.#deps
    const signal = this.#abort.signal
    let lease = now()
    const pace = async (bytes: number) => {
      run.bytes += bytes
      metrics.scrubBytes.inc(bytes)
      // Ahead of the rate: wait until the bytes read so far are due.
      const due = run.startedAt + (run.bytes / run.rate) * 1000
      const wait = due - now()
      if (wait > 0) await sleep(wait, undefined, { signal })
    }
    try {
      for await (const blob of blobs.list()) {
        signal.throwIfAborted()
        if (now() - lease > SCRUB_LEASE_TTL_MS / 3) {
          if (!(await metadata.acquireLease(SCRUB_LEASE, owner, { ttlMs: SCRUB_LEASE_TTL_MS })))
            throw new ScrubBusyError('the scrub lease was taken over by another replica')
          lease = now()
        }
        const { result } = await blobs.check(blob.digest, pace)
        this.#count(run, blob.digest, result)
        if (result === 'corrupt') await quarantine(this.#deps, blob.digest)
      }
      run.finishedAt = now()
      this.#lastFinished = run.finishedAt
      await metadata
        .putDocument(LAST_RUN.namespace, LAST_RUN.key, {
          fetchedAt: run.finishedAt,
          page: { blobs: run.blobs, corrupt: run.corrupt },
        })
        .catch((error: unknown) => {
          this.#logger.warn({ err: error }, 'could not record the scrub run')
        })
      metrics.scrubLastCompleted.set(run.finishedAt / 1000)
      const level = run.corrupt > 0 ? 'error' : 'info'
      this.#logger[level](
        { blobs: run.blobs, bytes: run.bytes, corrupt: run.corrupt, skipped: run.skipped },
        'scrub finished',
      )
    } catch (error) {
      run.finishedAt = now()
      run.error = signal.aborted ? 'stopped: the server is shutting down' : String(error)
      if (!signal.aborted) this.#logger.warn({ err: error }, 'scrub stopped early')
    } finally {
      metrics.scrubRunning.set(0)
      await metadata.releaseLease(SCRUB_LEASE, owner).catch(() => undefined)
    }
  }

  #count(run: MutableRun, digest: string, result: BlobCheck): void {
    run.blobs++
    this.#deps.metrics.scrubBlobs.inc({ result })
    if (result === 'ok') run.ok++
    else if (result === 'corrupt') {
      run.corrupt++
      if (run.corruptDigests.length < MAX_LISTED_CORRUPT) run.corruptDigests.push(digest)
    } else run.skipped++
  }
}

type MutableRun = {
  -readonly [K in keyof Omit<ScrubRun, 'corruptDigests'>]: ScrubRun[K]
} & { corruptDigests: string[] }
