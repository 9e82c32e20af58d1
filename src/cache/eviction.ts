/**
 * Keeps the cache under storage.maxSize: once the recorded total passes the
 * cap, least recently used blobs are deleted until it is at or below
 * maxSize * lowWatermark. Blobs being read or filled in this process are
 * skipped. With several replicas, a metadata lease makes one of them do it.
 */
import { randomUUID } from 'node:crypto'
import type { MetadataStore } from '../metadata/store.ts'
import type { Logger } from '../observability/logger.ts'
import type { Metrics } from '../observability/metrics.ts'
import type { BlobStore } from '../storage/blob-store.ts'
import type { InUse } from './in-use.ts'

/** Candidates fetched from the metadata store per round. */
const EVICTION_BATCH = 200
/** How long one replica may hold the eviction lease. */
const EVICTION_LEASE_MS = 60_000
const EVICTION_LEASE = 'eviction'

export interface EvictorDeps {
  readonly blobs: BlobStore
  readonly metadata: MetadataStore
  readonly metrics: Metrics
  readonly logger: Logger
  readonly inUse: InUse
  readonly maxSize: number
  readonly lowWatermark: number
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
    try {
      const skipped = new Set<string>()
      while (bytes > target) {
        const candidates = (await metadata.leastRecentlyUsed(EVICTION_BATCH + skipped.size)).filter(
          (record) => !skipped.has(record.digest),
        )
        if (candidates.length === 0) break
        for (const record of candidates) {
          if (bytes <= target) break
          if (this.deps.inUse.has(record.digest)) {
            skipped.add(record.digest)
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
      { evictedBytes: evicted, sizeBytes: bytes, targetBytes: target },
      'evicted least recently used blobs',
    )
    return evicted
  }
}
