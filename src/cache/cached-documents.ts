/**
 * Upstream documents kept in the metadata store for a TTL (a repository's tag
 * list): fresh within the TTL, loaded again after it, and served stale when
 * every upstream fails (cache/freshness.ts decides).
 */
import type { MetadataStore } from '../metadata/store.ts'
import type { Logger } from '../observability/logger.ts'
import type { CacheResult } from '../observability/pull-event.ts'
import { Freshness } from './freshness.ts'

export interface CachedDocument<T> {
  readonly value: T
  readonly cache: CacheResult
}

export interface CachedDocumentsDeps {
  readonly metadata: MetadataStore
  readonly logger: Logger
  readonly now: () => number
}

export class CachedDocuments {
  readonly #freshness: Freshness

  constructor(private readonly deps: CachedDocumentsDeps) {
    this.#freshness = new Freshness({
      logger: deps.logger.child({ component: 'documents' }),
      now: deps.now,
    })
  }

  /**
   * The document `key` of namespace `ns`: the stored one while younger than
   * `ttlMs`, else `load()`'s (then stored). `load` must return plain JSON data.
   */
  async get<T>(
    ns: string,
    key: string,
    ttlMs: number,
    load: () => Promise<T>,
  ): Promise<CachedDocument<T>> {
    const { metadata, now } = this.deps
    const { served, cache } = await this.#freshness.readThrough<T, T>({
      key: `${ns} ${key}`,
      ttlMs,
      what: 'document',
      read: async () => {
        const record = await metadata.getDocument(ns, key)
        return record && { fetchedAt: record.fetchedAt, value: record.page as T }
      },
      write: async (kept) => {
        await metadata.putDocument(ns, key, { fetchedAt: kept.fetchedAt, page: kept.value })
      },
      serve: (kept) => kept.value,
      load: async () => {
        const value = await load()
        return {
          kept: { fetchedAt: now(), value },
          cache: 'miss',
          served: value,
          upstream: undefined,
        }
      },
    })
    return { value: served, cache }
  }
}
