/**
 * Read-through for package index pages (a PyPI project's `/simple/<project>/`).
 * A page is fresh for `indexTTL`; after that it is fetched again in the pool's
 * order. `If-None-Match` goes only to the mirror that issued the ETag, and only
 * when that mirror is the one asked first: a page fetched from a fallback
 * mirror during an outage comes from the first mirror again once it is back,
 * instead of staying pinned to the fallback. A 304 only renews the page.
 *
 * A 404 is remembered in memory (NegativeCache) for a short negative TTL, so a
 * typo'd or private name does not hit the upstreams on every retry, and made-up
 * names leave nothing in the metadata store. When every upstream fails, the
 * last page is served stale. Concurrent requests for one page share one
 * upstream request.
 *
 * The page is parsed by the caller (the protocol layer knows the formats) and
 * stored parsed, as JSON data, in the metadata store. Recently used pages stay
 * in memory too, up to a total of INDEX_PAGES_MEMORY_BYTES of their stored form.
 */
import type { IncomingHttpHeaders } from 'node:http'
import type { IndexPageRecord, MetadataStore, SizedIndexPage } from '../metadata/store.ts'
import type { Logger } from '../observability/logger.ts'
import type { CacheResult } from '../observability/pull-event.ts'
import { UpstreamNotFoundError, UpstreamStatusError } from '../upstream/errors.ts'
import type { Mirror } from '../upstream/mirror.ts'
import type { UpstreamPool } from '../upstream/pool.ts'
import { fetchDocument, headerValue, type FetchedDocument } from './documents.ts'
import { ProjectUnknownError, isUpstreamFailure } from './errors.ts'
import { Lru } from './lru.ts'
import { NegativeCache } from './negative-cache.ts'
import { SingleFlight } from './single-flight.ts'

/**
 * Pages kept in memory, by the bytes of their stored (JSON) form. A page with
 * thousands of files is a few MB of JSON and takes two to three times that
 * parsed, so this bounds the heap they hold to about 100 MB.
 */
export const INDEX_PAGES_MEMORY_BYTES = 32 * 1024 * 1024

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
  /** Bytes of pages (their stored form) held in memory; default INDEX_PAGES_MEMORY_BYTES. */
  readonly memoryBytes?: number
}

export class IndexPages {
  readonly #flights = new SingleFlight<CachedPage<unknown>>()
  /** Recently used pages, weighed by the bytes of their stored form. */
  readonly #recent: Lru<SizedIndexPage>
  /** Projects no upstream has, each for its source's negative TTL. */
  readonly negatives: NegativeCache
  readonly #logger: Logger

  constructor(private readonly deps: IndexPagesDeps) {
    this.#logger = deps.logger.child({ component: 'index-pages' })
    this.#recent = new Lru(deps.memoryBytes ?? INDEX_PAGES_MEMORY_BYTES, (held) => held.bytes)
    this.negatives = new NegativeCache(deps.now)
  }

  /** The parsed page; ProjectUnknownError when the upstreams do not have the project. */
  async get<T>(source: IndexPageSource, parse: (page: UpstreamPage) => T): Promise<CachedPage<T>> {
    const key = pageKey(source)
    if (this.negatives.has(key)) throw new ProjectUnknownError(source.index, source.project)
    // A page in memory that is still fresh saves reading and parsing it from the
    // store on every file request; a stale one is looked up again (another
    // replica may have renewed it).
    const held = this.#recent.get(key)
    let record = held && this.#fresh(held.record, source) ? held.record : undefined
    if (!record) {
      const stored = await this.deps.metadata
        .readIndexPage(source.index, source.project)
        .catch((error: unknown) => {
          this.#logger.warn({ err: error }, 'could not read a cached index page')
          return undefined
        })
      // `page: null` is a negative answer stored by an older version: not a page.
      const page = stored && stored.record.page !== null ? stored : undefined
      if (page) this.#recent.set(key, page)
      record = page?.record ?? held?.record
    }
    if (record && this.#fresh(record, source))
      return { page: record.page as T, cache: 'hit', upstream: record.upstream }
    const loaded = await this.#flights.run(key, () => this.#load(source, parse, record))
    return loaded as CachedPage<T>
  }

  async #load(
    source: IndexPageSource,
    parse: (page: UpstreamPage) => unknown,
    record: IndexPageRecord | undefined,
  ): Promise<CachedPage<unknown>> {
    const issuer = this.#conditionalMirror(source, record)
    let doc: FetchedDocument
    try {
      const revalidated =
        issuer && record?.etag !== undefined
          ? await this.#fetchFrom(source, issuer, record.etag)
          : undefined
      // The issuer failed (then it is not asked again), or there was nothing to revalidate.
      doc = revalidated ?? (await this.#fetchInOrder(source, issuer))
    } catch (error) {
      if (error instanceof UpstreamNotFoundError) {
        await this.#forget(source, record)
        throw new ProjectUnknownError(source.index, source.project)
      }
      return this.#stale(source, record, error)
    }
    // Only the issuer is asked with If-None-Match, so only its answer may be a 304.
    if (doc.status === 304 && record) {
      await this.#put(source, { ...record, fetchedAt: this.deps.now() }, undefined)
      return { page: record.page, cache: 'revalidated', upstream: doc.mirror.name }
    }
    const page = parse(doc)
    const etag = headerValue(doc.headers, 'etag')
    await this.#put(
      source,
      {
        fetchedAt: this.deps.now(),
        upstream: doc.mirror.name,
        page,
        ...(etag ? { etag } : {}),
      },
      doc.body.length,
    )
    return { page, cache: 'miss', upstream: doc.mirror.name }
  }

  /**
   * The mirror to revalidate the cached page with If-None-Match: the one that
   * issued its ETag, when it is also the one asked first (the first mirror in
   * the configured order whose circuit is closed). Otherwise a plain GET in the
   * pool's order, so an ETag is never sent to another mirror and a fallback
   * mirror does not keep the page once the first one is back.
   */
  #conditionalMirror(
    source: IndexPageSource,
    record: IndexPageRecord | undefined,
  ): Mirror | undefined {
    if (record?.etag === undefined) return undefined
    const mirrors = source.pool.mirrors
    const first = mirrors.find((m) => m.isAvailable()) ?? mirrors[0]
    return first !== undefined && first.name === record.upstream ? first : undefined
  }

  /** A conditional GET from `mirror` alone; undefined when it failed and other mirrors remain. */
  async #fetchFrom(
    source: IndexPageSource,
    mirror: Mirror,
    etag: string,
  ): Promise<FetchedDocument | undefined> {
    const others = new Set(source.pool.mirrors.filter((m) => m !== mirror))
    try {
      return await fetchDocument(
        {
          pool: source.pool,
          path: source.path,
          headers: { accept: source.accept, 'if-none-match': etag },
        },
        { expect: [200, 304], maxBytes: MAX_INDEX_PAGE_BYTES, exclude: others },
      )
    } catch (error) {
      // A status it answered is its answer; only a failure moves on to the others.
      if (!isUpstreamFailure(error) || error instanceof UpstreamStatusError || others.size === 0)
        throw error
      return undefined
    }
  }

  /** A plain GET in the pool's order, without `except` (a mirror that just failed). */
  async #fetchInOrder(
    source: IndexPageSource,
    except: Mirror | undefined,
  ): Promise<FetchedDocument> {
    return fetchDocument(
      { pool: source.pool, path: source.path, headers: { accept: source.accept } },
      {
        expect: [200],
        maxBytes: MAX_INDEX_PAGE_BYTES,
        ...(except ? { exclude: new Set([except]) } : {}),
      },
    )
  }

  #fresh(record: IndexPageRecord, source: IndexPageSource): boolean {
    return this.deps.now() - record.fetchedAt < source.ttlMs
  }

  /** The project is gone upstream: remembered briefly, and no cached page of it is kept. */
  async #forget(source: IndexPageSource, record: IndexPageRecord | undefined): Promise<void> {
    const key = pageKey(source)
    this.negatives.add(key, source.negativeTtlMs)
    this.#recent.delete(key)
    if (!record) return
    await this.deps.metadata
      .deleteIndexPage(source.index, source.project)
      .catch((error: unknown) => {
        this.#logger.warn({ err: error }, 'could not delete a cached index page')
      })
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
          { expect: [200], maxBytes: MAX_INDEX_PAGE_BYTES, exclude: others },
        )
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

  /**
   * Stores the page and holds it in memory, weighed by its stored size (or,
   * when the store failed, `bodyBytes`, the size of the upstream body it was
   * parsed from, else its JSON size).
   */
  async #put(
    source: IndexPageSource,
    record: IndexPageRecord,
    bodyBytes: number | undefined,
  ): Promise<void> {
    const bytes = await this.deps.metadata
      .putIndexPage(source.index, source.project, record)
      .catch((error: unknown) => {
        this.#logger.warn({ err: error }, 'could not store an index page')
        return bodyBytes ?? Buffer.byteLength(JSON.stringify(record))
      })
    this.#recent.set(pageKey(source), { record, bytes })
  }
}

function pageKey(source: IndexPageSource): string {
  return `${source.index} ${source.project}`
}
