/**
 * Garbage collection: reconciles the metadata store with the disk and applies
 * the retention rule, on demand (`pullthrough gc`, `POST /-/api/v1/gc`), with
 * a dry run that only reports, and on a schedule while a retention rule is set.
 *
 * - A blob record whose file is gone (removed by hand, a lost disk) is dropped:
 *   eviction would count bytes that are not there.
 * - A blob file the store has no record of (a fresh Redis, a crash between
 *   commit and record) is recorded. It is verified content named by its hash;
 *   deleting it would only cost a refetch, and eviction reclaims it by LRU
 *   like any other once it has a record.
 * - Temporary files of downloads abandoned for STALE_TEMP_MS are removed.
 * - With `retention.keepTags`, each repository's tag records beyond its newest
 *   N are dropped (tag-retention.ts); before the blobs, so a run also counts
 *   what those tags leave unused.
 * - With `retention.unusedFor`, blobs nobody pulled for that long are deleted,
 *   except pinned ones and those being read or filled right now (and, with replicas sharing
 *   the storage, those another replica read within SHARED_EVICTION_GRACE_MS).
 *
 * One run at a time per cache, through the eviction-style lease `gc`.
 */
import type { MetadataStore } from '../metadata/store.ts'
import type { Logger } from '../observability/logger.ts'
import type { Metrics } from '../observability/metrics.ts'
import type { BlobStorage } from '../storage/blob-storage.ts'
import { SHARED_EVICTION_GRACE_MS } from './eviction.ts'
import type { InUse } from './in-use.ts'
import { oldTags } from './tag-retention.ts'

export const GC_LEASE = 'gc'
const GC_LEASE_TTL_MS = 10 * 60_000
/** Blob records read at most per run (least recently used first). */
export const MAX_GC_RECORDS = 1_000_000
/** Digests listed per category in a report; the counts cover all. */
const MAX_LISTED = 100

export interface GcDeps {
  /** Whether this replica leads scheduled work (metadata/leadership.ts); absent: it does. */
  readonly isLeader?: () => boolean
  readonly blobs: BlobStorage
  readonly metadata: MetadataStore
  readonly metrics: Metrics
  readonly logger: Logger
  readonly inUse: InUse
  readonly now: () => number
  /** `retention.unusedFor` in ms; 0: no retention rule. */
  readonly unusedForMs: number
  /** `retention.keepTags`: tags kept per repository; 0: all. */
  readonly keepTags: number
  /** The configured registries, whose repositories keepTags walks. */
  readonly registries: readonly string[]
  /** True when other replicas share the storage. */
  readonly shared: boolean
  readonly owner: string
}

export interface GcGroup {
  readonly count: number
  readonly bytes: number
  /** The first MAX_LISTED digests. */
  readonly digests: readonly string[]
}

export interface GcReport {
  readonly dryRun: boolean
  readonly startedAt: number
  readonly finishedAt: number
  /** Records dropped because their blob file is gone. */
  readonly recordsWithoutFile: GcGroup
  /** Files recorded because the store did not know them. */
  readonly filesWithoutRecord: GcGroup
  /** Blobs deleted by the retention rule (none without one). */
  readonly unused: GcGroup & { readonly unusedForMs: number }
  /** Unused blobs spared because they are being read or were read elsewhere lately. */
  readonly spared: number
  /** Unused blobs kept because they are pinned. */
  readonly pinned: number
  readonly tempFiles: number
  readonly tags: GcTags
}

/** Tags dropped by retention.keepTags. */
export interface GcTags {
  readonly keepTags: number
  readonly count: number
  /** The first MAX_LISTED, as `registry/repository:tag`. */
  readonly names: readonly string[]
  /** Tags kept whatever their age: their manifest is pinned. */
  readonly pinned: number
}

/** A run is going on this replica or another. */
export class GcBusyError extends Error {}

export class GarbageCollector {
  #running: Promise<GcReport> | undefined
  #timer: NodeJS.Timeout | undefined
  readonly #logger: Logger

  constructor(private readonly deps: GcDeps) {
    this.#logger = deps.logger.child({ component: 'gc' })
  }

  /** With a retention rule (unusedFor or keepTags), runs every `intervalMs` (errors logged); a no-op without one. */
  startSchedule(intervalMs: number): void {
    if ((this.deps.unusedForMs <= 0 && this.deps.keepTags <= 0) || intervalMs <= 0) return
    this.#timer = setInterval(() => {
      // Scheduled runs are the leader's; asked ones (the API) run anywhere.
      if (this.deps.isLeader?.() === false) return
      this.run({ dryRun: false }).catch((error: unknown) => {
        if (!(error instanceof GcBusyError))
          this.#logger.warn({ err: error }, 'scheduled gc failed')
      })
    }, intervalMs)
    this.#timer.unref()
  }

  async run(options: { dryRun: boolean }): Promise<GcReport> {
    if (this.#running) throw new GcBusyError('gc is already running on this replica')
    this.#running = this.#collect(options.dryRun).finally(() => {
      this.#running = undefined
    })
    return this.#running
  }

  async close(): Promise<void> {
    clearInterval(this.#timer)
    await this.#running?.catch(() => undefined)
  }

  async #collect(dryRun: boolean): Promise<GcReport> {
    const { metadata, blobs, owner, now } = this.deps
    if (!(await metadata.acquireLease(GC_LEASE, owner, { ttlMs: GC_LEASE_TTL_MS })))
      throw new GcBusyError('another replica is running gc')
    const startedAt = now()
    try {
      const pins = await metadata.pinned()
      const tags = await this.#dropOldTags(pins, dryRun)
      // Records first: a blob committed after this read is on disk and merely unrecorded.
      const records = await metadata.leastRecentlyUsed(MAX_GC_RECORDS)
      const recorded = new Set(records.map((r) => r.digest))
      const onDisk = new Set<string>()
      const filesWithoutRecord = group()
      for await (const file of blobs.list()) {
        onDisk.add(file.digest)
        if (recorded.has(file.digest)) continue
        add(filesWithoutRecord, file.digest, file.size)
        if (!dryRun) await metadata.putBlob(file.digest, file.size, Math.round(file.mtimeMs))
      }
      const recordsWithoutFile = group()
      const unused = group()
      let spared = 0
      let pinned = 0
      const cutoff = now() - this.deps.unusedForMs
      for (const record of records) {
        if (!onDisk.has(record.digest)) {
          // Gone since it was listed, or never there: either way the record counts bytes that are not.
          if (await blobs.has(record.digest)) continue
          add(recordsWithoutFile, record.digest, record.size)
          if (!dryRun) await metadata.deleteBlob(record.digest)
          continue
        }
        if (this.deps.unusedForMs <= 0 || record.lastAccess >= cutoff) continue
        if (pins.has(record.digest)) {
          pinned++
          continue
        }
        if (this.deps.inUse.has(record.digest) || (await this.#readElsewhere(record.digest))) {
          spared++
          continue
        }
        add(unused, record.digest, record.size)
        if (!dryRun) {
          await blobs.delete(record.digest)
          await metadata.deleteBlob(record.digest)
          this.deps.metrics.evictions.inc()
          this.deps.metrics.evictedBytes.inc(record.size)
        }
      }
      const tempFiles = await blobs.removeStaleTemps(now(), { dryRun })
      const report: GcReport = {
        dryRun,
        startedAt,
        finishedAt: now(),
        recordsWithoutFile: done(recordsWithoutFile),
        filesWithoutRecord: done(filesWithoutRecord),
        unused: { ...done(unused), unusedForMs: this.deps.unusedForMs },
        spared,
        pinned,
        tempFiles,
        tags,
      }
      this.#logger.info(
        {
          dryRun,
          recordsWithoutFile: recordsWithoutFile.count,
          filesWithoutRecord: filesWithoutRecord.count,
          unused: unused.count,
          unusedBytes: unused.bytes,
          spared,
          tempFiles,
          tagsDropped: tags.count,
        },
        dryRun ? 'gc dry run' : 'gc finished',
      )
      return report
    } finally {
      await metadata.releaseLease(GC_LEASE, owner).catch(() => undefined)
    }
  }

  /** retention.keepTags over every repository of every registry. */
  async #dropOldTags(pins: ReadonlySet<string>, dryRun: boolean): Promise<GcTags> {
    const { keepTags, registries, metadata, metrics } = this.deps
    const names: string[] = []
    let count = 0
    let pinned = 0
    if (keepTags <= 0) return { keepTags, count, names, pinned }
    for (const registry of registries) {
      for (const repository of await metadata.listRepositories(registry)) {
        const verdict = oldTags(await metadata.listTags(registry, repository), keepTags, pins)
        pinned += verdict.pinned
        count += verdict.dropped.length
        for (const tag of verdict.dropped)
          if (names.length < MAX_LISTED) names.push(`${registry}/${repository}:${tag}`)
        if (dryRun) continue
        for (const name of verdict.records) await metadata.deleteTag(registry, repository, name)
        metrics.gcTagsDropped.inc(verdict.dropped.length)
      }
    }
    return { keepTags, count, names, pinned }
  }

  /** With shared storage: read by a replica within the grace period, as the store says now. */
  async #readElsewhere(digest: string): Promise<boolean> {
    if (!this.deps.shared) return false
    const current = await this.deps.metadata.getBlob(digest)
    return current !== undefined && current.lastAccess >= this.deps.now() - SHARED_EVICTION_GRACE_MS
  }
}

interface Building {
  count: number
  bytes: number
  digests: string[]
}

function group(): Building {
  return { count: 0, bytes: 0, digests: [] }
}

function add(into: Building, digest: string, bytes: number): void {
  into.count++
  into.bytes += bytes
  if (into.digests.length < MAX_LISTED) into.digests.push(digest)
}

function done(building: Building): GcGroup {
  return { count: building.count, bytes: building.bytes, digests: building.digests }
}
