/**
 * Keeps the cache under storage.maxSize: once the recorded total passes the
 * cap, least recently used blobs are deleted until it is at or below
 * maxSize * lowWatermark. Blobs being read or filled in this process are
 * skipped. With several replicas, a metadata lease makes one of them do it,
 * and since it cannot see the others' readers, it also spares every blob read
 * within SHARED_EVICTION_GRACE_MS, checking the blob's last access in the
 * metadata store again right before deleting it. Pinned blobs are never evicted.
 */
import { randomUUID } from 'node:crypto'
import type { BlobRecord, MetadataStore } from '../metadata/store.ts'
import type { Logger } from '../observability/logger.ts'
import type { Metrics } from '../observability/metrics.ts'
import type { BlobStorage } from '../storage/blob-storage.ts'
import type { InUse } from './in-use.ts'

/**
 * With storage shared between replicas: a blob read this recently (by any
 * replica) is not evicted, so a reader on another replica is not cut (ESTALE
 * on NFS, or a 404 between its stat and its open). Far above
 * ACCESS_FLUSH_INTERVAL_MS (5 s), the delay before a replica's reads reach the
 * metadata store.
 */
export const SHARED_EVICTION_GRACE_MS = 10 * 60 * 1000

/** Candidates fetched from the metadata store per round. */
const EVICTION_BATCH = 200
/** How long one replica may hold the eviction lease. */
const EVICTION_LEASE_MS = 60_000
const EVICTION_LEASE = 'eviction'

export interface EvictorDeps {
  readonly blobs: BlobStorage
  readonly metadata: MetadataStore
  readonly metrics: Metrics
  readonly logger: Logger
  readonly inUse: InUse
  readonly maxSize: number
  readonly lowWatermark: number
  /** True when other replicas share the storage (and the metadata store). */
  readonly shared?: boolean
  readonly now?: () => number
}

export class Evictor {
  readonly #owner = randomUUID()
  #running: Promise<number> | undefined
  readonly #logger: Logger

  constructor(private readonly deps: EvictorDeps) {
    this.#logger = deps.logger.child({ component: 'eviction' })
  }

  /** Runs an eviction pass unless one is running; resolves with the bytes evicted. */
  async run(): Promise<number> {
    this.#running ??= this.#evict().finally(() => {
      this.#running = undefined
    })
    return this.#running
  }

  async #evict(): Promise<number> {
    const { metadata, metrics, maxSize } = this.deps
    let { bytes } = await metadata.blobTotals()
    metrics.cacheSizeBytes.set(bytes)
    if (bytes <= maxSize) return 0
    if (!(await metadata.acquireLease(EVICTION_LEASE, this.#owner, { ttlMs: EVICTION_LEASE_MS })))
      return 0
    const target = Math.floor(maxSize * this.deps.lowWatermark)
    let evicted = 0
    let spared = 0
    try {
      // Pinned blobs are skipped like blobs in use, from the first round on.
      const skipped = await metadata.pinned()
      while (bytes > target) {
        const candidates = (await metadata.leastRecentlyUsed(EVICTION_BATCH + skipped.size)).filter(
          (record) => !skipped.has(record.digest),
        )
        if (candidates.length === 0) break
        for (const record of candidates) {
          if (bytes <= target) break
          if (this.deps.inUse.has(record.digest) || (await this.#readElsewhere(record))) {
            skipped.add(record.digest)
            spared += record.size
            continue
          }
          await this.deps.blobs.delete(record.digest)
          await metadata.deleteBlob(record.digest)
          bytes -= record.size
          evicted += record.size
          metrics.evictions.inc()
          metrics.evictedBytes.inc(record.size)
        }
        if (candidates.every((record) => skipped.has(record.digest))) break
      }
    } finally {
      await metadata.releaseLease(EVICTION_LEASE, this.#owner)
    }
    metrics.cacheSizeBytes.set(bytes)
    this.#logger.info(
      { evictedBytes: evicted, sizeBytes: bytes, targetBytes: target, sparedBytes: spared },
      'evicted least recently used blobs',
    )
    if (bytes > target && spared > 0)
      this.#logger.warn(
        { sizeBytes: bytes, targetBytes: target, sparedBytes: spared },
        'the cache stays over its target: the rest is being read or was read recently',
      )
    return evicted
  }

  /** With shared storage: true when the blob was read within the grace period, as the store says now. */
  async #readElsewhere(record: BlobRecord): Promise<boolean> {
    if (!this.deps.shared) return false
    const cutoff = (this.deps.now ?? Date.now)() - SHARED_EVICTION_GRACE_MS
    if (record.lastAccess >= cutoff) return true
    // Another replica may have written a read since the candidates were listed.
    const current = await this.deps.metadata.getBlob(record.digest)
    return current !== undefined && current.lastAccess >= cutoff
  }
}
