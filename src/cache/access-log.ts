/**
 * Batches blob accesses for the metadata store. A busy tag is served thousands
 * of times a second; writing each access (a journal line, a Redis round trip)
 * would cost more than serving it. Accesses are counted in memory and written
 * once per digest per flush, with the hit count and the latest time, which is
 * all LRU eviction and the statistics need.
 */
import type { MetadataStore } from '../metadata/store.ts'
import type { Logger } from '../observability/logger.ts'

/** How often batched accesses are written to the metadata store. */
export const ACCESS_FLUSH_INTERVAL_MS = 5_000
/** Distinct digests held before a flush is forced (bounds the memory). */
const MAX_PENDING_DIGESTS = 10_000

interface Pending {
  hits: number
  last: number
}

export class AccessLog {
  #pending = new Map<string, Pending>()
  #timer: NodeJS.Timeout | undefined
  #flushing: Promise<void> = Promise.resolve()

  constructor(
    private readonly metadata: MetadataStore,
    private readonly logger: Logger,
  ) {}

  /** Records one access to `digest` at `now`. */
  record(digest: string, now: number): void {
    const entry = this.#pending.get(digest)
    if (entry) {
      entry.hits++
      entry.last = Math.max(entry.last, now)
    } else {
      this.#pending.set(digest, { hits: 1, last: now })
    }
    if (this.#pending.size >= MAX_PENDING_DIGESTS) void this.flush()
    else this.#timer ??= setTimeout(() => void this.flush(), ACCESS_FLUSH_INTERVAL_MS).unref()
  }

  /** Writes every pending access; resolves when written (failures are logged, not thrown). */
  flush(): Promise<void> {
    clearTimeout(this.#timer)
    this.#timer = undefined
    const batch = this.#pending
    this.#pending = new Map()
    this.#flushing = this.#flushing.then(async () => {
      for (const [digest, { hits, last }] of batch) {
        try {
          await this.metadata.touchBlob(digest, last, hits)
        } catch (error) {
          // The store is down: each further call would wait out its timeout. Drop the batch.
          this.logger.warn({ err: error, dropped: batch.size }, 'could not record blob accesses')
          return
        }
      }
    })
    return this.#flushing
  }
}
