/**
 * Sync lists as jobs: each list runs on its schedule (an interval or a cron
 * expression) and when asked (`POST /-/api/v1/sync`, `pullthrough sync`).
 * Replicas sharing a metadata store run each list once: a run holds the lease
 * `sync:<list>`, renewed while it runs; when its replica dies the lease runs
 * out and the next replica to check finds the list due and runs it. The last
 * finished run is recorded in the store, so a restart keeps the schedule and
 * any replica can report it.
 */
import { Cron } from 'croner'
import type { SyncListConfig } from '../config/schema.ts'
import type { MetadataStore } from '../metadata/store.ts'
import type { Logger } from '../observability/logger.ts'
import { SyncBusyError, SyncUnknownListError } from './errors.ts'
import {
  newRun,
  runList,
  type ListRunDeps,
  type MutableRun,
  type SyncCounts,
  type SyncRun,
  type SyncTrigger,
} from './list-run.ts'

/** How long a run's lease lasts without renewal; renewed every third of it. */
export const SYNC_LEASE_TTL_MS = 60_000
/** How often the schedule checks which lists are due. */
export const SYNC_CHECK_MS = 30_000
/** Where each list's last finished run is recorded (key `sync:<list>`). */
const JOBS_NAMESPACE = '_jobs'
/** Failed items kept in the recorded summary of a run. */
const MAX_RECORDED_FAILURES = 20

export interface SyncJobsDeps extends ListRunDeps {
  /** Whether this replica leads scheduled work (metadata/leadership.ts); absent: it does. */
  readonly isLeader?: () => boolean
  readonly lists: readonly SyncListConfig[]
  readonly metadata: Pick<
    MetadataStore,
    'acquireLease' | 'releaseLease' | 'getDocument' | 'putDocument' | 'pinned' | 'setPinned'
  >
  /** This replica, as the lease's owner. */
  readonly owner: string
}

/** What the store keeps of a list's last finished run. */
export interface SyncRecord extends SyncCounts {
  readonly trigger: SyncTrigger
  readonly startedAt: number
  readonly finishedAt: number
  readonly error: string | null
  /** The first failed items, with why. */
  readonly failures: readonly { readonly name: string; readonly error: string }[]
  /** Digests this list pinned (and no one had pinned before), released when it no longer wants them. */
  readonly pins: readonly string[]
}

export interface SyncListStatus {
  readonly name: string
  readonly schedule: string | null
  readonly running: boolean
  /** The run in progress on this replica, else the last one it ran. */
  readonly run: SyncRun | null
  /** The last finished run on any replica. */
  readonly last: Omit<SyncRecord, 'pins'> | null
  /** When the schedule runs it next; null without a schedule. */
  readonly nextDue: number | null
}

export class SyncJobs {
  readonly #deps: SyncJobsDeps
  readonly #logger: Logger
  readonly #runs = new Map<string, MutableRun>()
  readonly #running = new Map<string, Promise<void>>()
  readonly #abort = new AbortController()
  #timer: NodeJS.Timeout | undefined

  constructor(deps: SyncJobsDeps) {
    this.#deps = deps
    this.#logger = deps.logger.child({ component: 'sync' })
  }

  get lists(): readonly string[] {
    return this.#deps.lists.map((l) => l.name)
  }

  /** Starts (or restarts) the schedule, a no-op when no list has one; the first check comes `checkMs` after start. */
  startSchedule(checkMs = SYNC_CHECK_MS): void {
    clearInterval(this.#timer)
    if (!this.#deps.lists.some((l) => l.schedule)) return
    this.#timer = setInterval(() => {
      void this.#scheduled()
    }, checkMs)
    this.#timer.unref()
  }

  async status(names?: readonly string[]): Promise<SyncListStatus[]> {
    return Promise.all(this.#select(names).map((list) => this.#status(list)))
  }

  /**
   * Starts the lists (every one when `names` is empty); resolves once each has
   * its lease. SyncUnknownListError for a name no list has; SyncBusyError when
   * one of them runs already (the others are not started then).
   */
  async start(names: readonly string[], trigger: SyncTrigger): Promise<SyncListStatus[]> {
    const lists = this.#select(names)
    const busy = lists.find((l) => this.#running.has(l.name))
    if (busy)
      throw new SyncBusyError(`the sync list ${busy.name} is already running on this replica`)
    const leased: SyncListConfig[] = []
    for (const list of lists) {
      if (await this.#acquire(list)) {
        leased.push(list)
        continue
      }
      await Promise.all(leased.map((l) => this.#release(l)))
      throw new SyncBusyError(`another replica is running the sync list ${list.name}`)
    }
    for (const list of leased) this.#launch(list, trigger)
    return this.status(lists.map((l) => l.name))
  }

  /** Resolves when no run is going on this replica. */
  async settled(): Promise<void> {
    while (this.#running.size > 0) await Promise.allSettled([...this.#running.values()])
  }

  /** Stops the schedule and the runs in progress. */
  async close(): Promise<void> {
    clearInterval(this.#timer)
    this.#abort.abort()
    await this.settled()
  }

  #select(names: readonly string[] | undefined): SyncListConfig[] {
    if (!names || names.length === 0) return [...this.#deps.lists]
    return names.map((name) => {
      const list = this.#deps.lists.find((l) => l.name === name)
      if (!list) throw new SyncUnknownListError(name)
      return list
    })
  }

  async #status(list: SyncListConfig): Promise<SyncListStatus> {
    const record = await this.#record(list)
    const run = this.#runs.get(list.name)
    return {
      name: list.name,
      schedule: scheduleText(list),
      running: this.#running.has(list.name),
      run: run ? { ...run, items: [...run.items] } : null,
      last: record ? withoutPins(record) : null,
      nextDue: nextDue(list, record?.finishedAt, this.#deps.now()),
    }
  }

  async #scheduled(): Promise<void> {
    // Scheduled runs are the leader's; asked ones (the API, the CLI) run anywhere.
    if (this.#deps.isLeader?.() === false) return
    for (const list of this.#deps.lists) {
      if (!list.schedule || this.#running.has(list.name) || this.#abort.signal.aborted) continue
      try {
        const record = await this.#record(list)
        const due = nextDue(list, record?.finishedAt, this.#deps.now())
        if (due === null || due > this.#deps.now()) continue
        if (!(await this.#acquire(list))) continue
        this.#launch(list, 'schedule')
      } catch (error) {
        this.#logger.warn({ list: list.name, err: error }, 'scheduled sync could not start')
      }
    }
  }

  #launch(list: SyncListConfig, trigger: SyncTrigger): void {
    const run = newRun(list.name, trigger, this.#deps.now())
    this.#runs.set(list.name, run)
    this.#deps.metrics.syncRunning.set({ list: list.name }, 1)
    this.#logger.info({ list: list.name, trigger }, 'sync started')
    const done = this.#run(list, run).finally(() => {
      this.#running.delete(list.name)
      this.#deps.metrics.syncRunning.set({ list: list.name }, 0)
    })
    this.#running.set(list.name, done)
  }

  async #run(list: SyncListConfig, run: MutableRun): Promise<void> {
    const { now } = this.#deps
    // The run stops when the server does, or when its lease is lost (another replica took over).
    const stop = new AbortController()
    const onClose = () => stop.abort(new Error('stopped: the server is shutting down'))
    this.#abort.signal.addEventListener('abort', onClose)
    const renew = setInterval(() => {
      this.#acquire(list)
        .then((held) => {
          if (!held) stop.abort(new Error('stopped: the lease was taken over by another replica'))
        })
        .catch((error: unknown) => {
          this.#logger.warn({ list: list.name, err: error }, 'could not renew the sync lease')
        })
    }, SYNC_LEASE_TTL_MS / 3)
    try {
      const previous = await this.#record(list)
      const touched = await runList(this.#deps, list, run, stop.signal)
      const pins = list.pin ? await this.#pin(list, touched, previous, run.failed === 0) : []
      run.finishedAt = now()
      await this.#save(list, run, pins)
      if (run.failed === 0)
        this.#deps.metrics.syncLastSuccess.set({ list: list.name }, run.finishedAt / 1000)
      this.#logger[run.failed > 0 ? 'warn' : 'info'](
        {
          list: list.name,
          new: run.new,
          updated: run.updated,
          unchanged: run.unchanged,
          failed: run.failed,
          bytes: run.bytes,
        },
        'sync finished',
      )
    } catch (error) {
      run.finishedAt = now()
      run.current = null
      run.error = stop.signal.aborted ? message(stop.signal.reason) : message(error)
      if (!this.#abort.signal.aborted)
        this.#logger.warn({ list: list.name, err: error }, 'sync stopped early')
    } finally {
      clearInterval(renew)
      this.#abort.signal.removeEventListener('abort', onClose)
      await this.#release(list)
    }
  }

  /**
   * Pins what the run wanted. Digests this list pinned before and wants no
   * more are unpinned, only after a run with no failure (a failed item may
   * still want them) and never a pin someone else set first.
   */
  async #pin(
    list: SyncListConfig,
    touched: ReadonlySet<string>,
    previous: SyncRecord | undefined,
    complete: boolean,
  ): Promise<string[]> {
    const { metadata } = this.#deps
    const already = await metadata.pinned()
    const mine = new Set(previous?.pins ?? [])
    for (const digest of touched) {
      if (already.has(digest)) continue
      await metadata.setPinned(digest, true)
      mine.add(digest)
    }
    if (!complete) return [...mine]
    for (const digest of mine) {
      if (touched.has(digest)) continue
      await metadata.setPinned(digest, false)
      mine.delete(digest)
    }
    return [...mine]
  }

  async #save(list: SyncListConfig, run: MutableRun, pins: readonly string[]): Promise<void> {
    const record: SyncRecord = {
      trigger: run.trigger,
      startedAt: run.startedAt,
      finishedAt: run.finishedAt ?? this.#deps.now(),
      error: run.error,
      new: run.new,
      updated: run.updated,
      unchanged: run.unchanged,
      failed: run.failed,
      bytes: run.bytes,
      failures: run.items
        .filter((i) => i.state === 'failed')
        .slice(0, MAX_RECORDED_FAILURES)
        .map((i) => ({ name: i.name, error: i.error ?? '' })),
      pins,
    }
    await this.#deps.metadata.putDocument(JOBS_NAMESPACE, jobKey(list), {
      fetchedAt: record.finishedAt,
      page: record,
    })
  }

  async #record(list: SyncListConfig): Promise<SyncRecord | undefined> {
    const document = await this.#deps.metadata.getDocument(JOBS_NAMESPACE, jobKey(list))
    return document?.page as SyncRecord | undefined
  }

  #acquire(list: SyncListConfig): Promise<boolean> {
    return this.#deps.metadata.acquireLease(jobKey(list), this.#deps.owner, {
      ttlMs: SYNC_LEASE_TTL_MS,
    })
  }

  async #release(list: SyncListConfig): Promise<void> {
    await this.#deps.metadata.releaseLease(jobKey(list), this.#deps.owner).catch(() => undefined)
  }
}

function jobKey(list: SyncListConfig): string {
  return `sync:${list.name}`
}

function scheduleText(list: SyncListConfig): string | null {
  const schedule = list.schedule
  if (!schedule) return null
  return schedule.kind === 'cron' ? schedule.expression : `every ${schedule.ms / 1000}s`
}

/** When the schedule runs the list next: at once when it never ran. */
export function nextDue(
  list: Pick<SyncListConfig, 'schedule'>,
  lastFinished: number | undefined,
  now: number,
): number | null {
  const schedule = list.schedule
  if (!schedule) return null
  if (lastFinished === undefined) return now
  if (schedule.kind === 'interval') return lastFinished + schedule.ms
  const next = new Cron(schedule.expression, { paused: true }).nextRun(new Date(lastFinished))
  return next ? next.getTime() : null
}

function withoutPins(record: SyncRecord): Omit<SyncRecord, 'pins'> {
  return Object.fromEntries(Object.entries(record).filter(([key]) => key !== 'pins')) as Omit<
    SyncRecord,
    'pins'
  >
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}
