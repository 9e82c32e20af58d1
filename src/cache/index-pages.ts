/**
 * Read-through for package index pages (a PyPI project's `/simple/<project>/`).
 * A page is fresh for `indexTTL`; after that it is fetched again with
 * `If-None-Match` from the mirror that gave it, and a 304 only renews it. A 404
 * is remembered for a short negative TTL, so a typo'd or private name does not
 * hit the upstreams on every retry. When every upstream fails, the last page
 * is served stale. Concurrent requests for one page share one upstream request.
 *
 * The page is parsed by the caller (the protocol layer knows the formats) and
 * stored parsed, as JSON data, in the metadata store.
 */
import type { IncomingHttpHeaders } from 'node:http'
import type { IndexPageRecord, MetadataStore } from '../metadata/store.ts'
import type { Logger } from '../observability/logger.ts'
import type { CacheResult } from '../observability/pull-event.ts'
import type { UpstreamPool } from '../upstream/pool.ts'
import { fetchDocument, headerValue } from './documents.ts'
import { FillFailedError, ProjectUnknownError, isUpstreamFailure } from './errors.ts'
import { Lru } from './lru.ts'
import { SingleFlight } from './single-flight.ts'

/** Parsed pages kept in memory (a big project's page is a few MB parsed; most are KB). */
export const MAX_PAGES_IN_MEMORY = 256

/** Largest index page accepted (the biggest projects' pages on pypi.org are a few MB). */
export const MAX_INDEX_PAGE_BYTES = 64 * 1024 * 1024

export interface IndexPageSource {
  readonly pool: UpstreamPool
  /** The index name (metadata namespace). */
  readonly index: string
  /** The normalized project name (metadata key). */
  readonly project: string
  /** Path of the page relative to each mirror's base URL. */
  readonly path: string
  readonly accept: string
  readonly ttlMs: number
  readonly negativeTtlMs: number
}

/** An upstream answer, as the parser gets it. */
export interface UpstreamPage {
  readonly body: Buffer
  readonly headers: IncomingHttpHeaders
  /** The final URL, after redirects: relative links resolve against it. */
  readonly url: string
}

export interface CachedPage<T> {
  readonly page: T
  readonly cache: CacheResult
  /** The mirror that gave the page (its URL, never credentials). */
  readonly upstream: string | undefined
}

export interface IndexPagesDeps {
  readonly metadata: MetadataStore
  readonly logger: Logger
  readonly now: () => number
}

export class IndexPages {
  readonly #flights = new SingleFlight<CachedPage<unknown>>()
  /** Recently used pages. */
  readonly #recent = new Lru<IndexPageRecord>(MAX_PAGES_IN_MEMORY, () => 1)
  readonly #logger: Logger

  constructor(private readonly deps: IndexPagesDeps) {
    this.#logger = deps.logger.child({ component: 'index-pages' })
  }

  /** The parsed page; ProjectUnknownError when the upstreams do not have the project. */
  async get<T>(source: IndexPageSource, parse: (page: UpstreamPage) => T): Promise<CachedPage<T>> {
    const key = `${source.index} ${source.project}`
    // A page in memory that is still fresh saves reading and parsing it from the
    // store on every file request; a stale one is looked up again (another
    // replica may have renewed it).
    const held = this.#recent.get(key)
    const heldFresh = held !== undefined && this.deps.now() - held.fetchedAt < source.ttlMs
    const record =
      heldFresh && held.page !== null
        ? held
        : await this.deps.metadata
            .getIndexPage(source.index, source.project)
            .catch((error: unknown) => {
              this.#logger.warn({ err: error }, 'could not read a cached index page')
              return undefined
            })
    if (record && record !== held) this.#recent.set(key, record)
    if (record) {
      const age = this.deps.now() - record.fetchedAt
      if (record.page === null && age < source.negativeTtlMs)
        throw new ProjectUnknownError(source.index, source.project)
      if (record.page !== null && age < source.ttlMs)
        return { page: record.page as T, cache: 'hit', upstream: record.upstream }
    }
    const loaded = await this.#flights.run(key, () =>
      this.#load(source, parse, record?.page === null ? undefined : record),
    )
    return loaded as CachedPage<T>
  }

  async #load(
    source: IndexPageSource,
    parse: (page: UpstreamPage) => unknown,
    record: IndexPageRecord | undefined,
  ): Promise<CachedPage<unknown>> {
    const prefer = source.pool.mirrors.find((m) => m.name === record?.upstream)
    const revalidate = record?.etag !== undefined && prefer !== undefined
    let doc
    try {
      doc = await fetchDocument(
        {
          pool: source.pool,
          path: source.path,
          headers: {
            accept: source.accept,
            ...(revalidate ? { 'if-none-match': record.etag ?? '' } : {}),
          },
        },
        { maxBytes: MAX_INDEX_PAGE_BYTES, ...(revalidate ? { prefer } : {}) },
      )
    } catch (error) {
      return this.#stale(source, record, error)
    }
    if (doc.status === 304 && record && doc.mirror === prefer) {
      await this.#put(source, { ...record, fetchedAt: this.deps.now() })
      return { page: record.page, cache: 'revalidated', upstream: doc.mirror.name }
    }
    if (doc.status === 404 || doc.status === 410) {
      await this.#put(source, { fetchedAt: this.deps.now(), page: null })
      throw new ProjectUnknownError(source.index, source.project)
    }
    if (doc.status !== 200)
      return this.#stale(
        source,
        record,
        new FillFailedError(source.project, `upstream answered ${doc.status}`),
      )
    const page = parse(doc)
    const etag = headerValue(doc.headers, 'etag')
    await this.#put(source, {
      fetchedAt: this.deps.now(),
      upstream: doc.mirror.name,
      page,
      ...(etag ? { etag } : {}),
    })
    return { page, cache: 'miss', upstream: doc.mirror.name }
  }

  /**
   * The page as each other mirror has it, fetched now and not cached: where
   * to look for another copy of a file whose listed source failed. Mirrors
   * that fail or lack the project are skipped.
   */
  async fromOtherMirrors<T>(
    source: IndexPageSource,
    except: string | undefined,
    parse: (page: UpstreamPage) => T,
  ): Promise<{ page: T; upstream: string }[]> {
    const pages: { page: T; upstream: string }[] = []
    for (const mirror of source.pool.mirrors) {
      if (mirror.name === except) continue
      const others = new Set(source.pool.mirrors.filter((m) => m !== mirror))
      try {
        const doc = await fetchDocument(
          { pool: source.pool, path: source.path, headers: { accept: source.accept } },
          { maxBytes: MAX_INDEX_PAGE_BYTES, exclude: others },
        )
        if (doc.status !== 200) continue
        const page = parse(doc)
        pages.push({ page, upstream: mirror.name })
      } catch (error) {
        this.#logger.info(
          { upstream: mirror.name, project: source.project, err: error },
          'another mirror could not give the page',
        )
      }
    }
    return pages
  }

  #stale(
    source: IndexPageSource,
    record: IndexPageRecord | undefined,
    error: unknown,
  ): CachedPage<unknown> {
    if (!record || !isUpstreamFailure(error)) throw error
    this.#logger.warn(
      { index: source.index, project: source.project, err: error },
      'every upstream failed; serving the cached index page stale',
    )
    return { page: record.page, cache: 'stale', upstream: record.upstream }
  }

  async #put(source: IndexPageSource, record: IndexPageRecord): Promise<void> {
    this.#recent.set(`${source.index} ${source.project}`, record)
    await this.deps.metadata
      .putIndexPage(source.index, source.project, record)
      .catch((error: unknown) => {
        this.#logger.warn({ err: error }, 'could not store an index page')
      })
  }
}
