/**
 * Upstream documents kept in the metadata store for a TTL (a repository's tag
 * list): fresh within the TTL, loaded again after it, and served stale when
 * every upstream fails. Concurrent loads of one document share one run.
 */
import type { MetadataStore } from '../metadata/store.ts'
import type { Logger } from '../observability/logger.ts'
import type { CacheResult } from '../observability/pull-event.ts'
import { isUpstreamFailure } from './errors.ts'
import { SingleFlight } from './single-flight.ts'

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
  readonly #flights = new SingleFlight<CachedDocument<unknown>>()
  readonly #logger: Logger

  constructor(private readonly deps: CachedDocumentsDeps) {
    this.#logger = deps.logger.child({ component: 'documents' })
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
    const record = await this.deps.metadata.getIndexPage(ns, key).catch((error: unknown) => {
      this.#logger.warn({ err: error }, 'could not read a cached document')
      return undefined
    })
    if (record && this.deps.now() - record.fetchedAt < ttlMs)
      return { value: record.page as T, cache: 'hit' }
    const loaded = await this.#flights.run(`${ns} ${key}`, async () => {
      try {
        const value = await load()
        await this.deps.metadata
          .putIndexPage(ns, key, { fetchedAt: this.deps.now(), page: value })
          .catch((error: unknown) => {
            this.#logger.warn({ err: error }, 'could not store a cached document')
          })
        return { value, cache: 'miss' as const }
      } catch (error) {
        if (!record || !isUpstreamFailure(error)) throw error
        this.#logger.warn({ ns, key, err: error }, 'every upstream failed; serving a stale copy')
        return { value: record.page, cache: 'stale' as const }
      }
    })
    return loaded as CachedDocument<T>
  }
}
