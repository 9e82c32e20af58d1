/**
 * Read-through for package index pages (a PyPI project's `/simple/<project>/`),
 * a freshness policy (cache/freshness.ts): fresh for `indexTTL`, then asked of
 * the index's remote with the kept ETag (a 304 only renews the page). A 404
 * is remembered in memory for a short negative TTL, so a typo'd or private
 * name does not hit the upstreams on every retry and made-up names leave
 * nothing in the metadata store.
 *
 * The page is parsed by the caller (the protocol layer knows the formats) and
 * stored parsed, as JSON data, in the metadata store. Recently used pages stay
 * in memory too, up to a total of INDEX_PAGES_MEMORY_BYTES of their stored form.
 */
import type { DocumentRecord, MetadataStore, SizedDocument } from '../metadata/store.ts'
import type { Logger } from '../observability/logger.ts'
import type { CacheResult } from '../observability/pull-event.ts'
import { ProjectUnknownError } from './errors.ts'
import { Freshness, type FreshnessPolicy, type Kept, type Loaded } from './freshness.ts'
import { Lru } from './lru.ts'
import type { NegativeCache } from './negative-cache.ts'

/**
 * Pages kept in memory, by the bytes of their stored (JSON) form. A page with
 * thousands of files is a few MB of JSON and takes two to three times that
 * parsed, so this bounds the heap they hold to about 100 MB.
 */
export const INDEX_PAGES_MEMORY_BYTES = 32 * 1024 * 1024

/** An upstream answer, as the parser gets it. */
export interface UpstreamPage {
  readonly body: Buffer
  readonly contentType: string | undefined
  /** The final URL, after redirects: relative links resolve against it. */
  readonly url: string
}

/** An upstream's answer to a page request: a page, or "unchanged" (304) for the kept one. */
export type RemotePage =
  | { readonly page: UpstreamPage; readonly etag: string | undefined; readonly upstream: string }
  | { readonly unchanged: true; readonly upstream: string }

/** An index's project pages upstream: the protocol's remote (pypi/remote.ts) speaks the API. */
export interface PageRemote {
  /** The index's mirrors, by name, in configured order. */
  readonly mirrors: readonly string[]
  /**
   * The project's page, revalidated with `kept`'s ETag where its issuer is
   * asked; ProjectUnknownError when no upstream has the project.
   */
  page(
    project: string,
    kept: { readonly etag: string; readonly upstream: string | undefined } | undefined,
  ): Promise<RemotePage>
  /** The project's page from one mirror alone. */
  pageFrom(project: string, mirror: string): Promise<UpstreamPage>
}

export interface IndexPageSource {
  readonly remote: PageRemote
  /** The index name (metadata namespace). */
  readonly index: string
  /** The normalized project name (metadata key). */
  readonly project: string
  readonly ttlMs: number
  readonly negativeTtlMs: number
  /** A project the upstreams no longer have keeps its cached page. */
  readonly keepOnNotFound: boolean
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
  readonly #freshness: Freshness
  /** Recently used pages, weighed by the bytes of their stored form. */
  readonly #recent: Lru<SizedDocument>
  /** Sizes of the upstream bodies just loaded pages were parsed from, to weigh them when unstored. */
  readonly #bodyBytes = new WeakMap<Kept<KeptPage>, number>()
  readonly #logger: Logger

  constructor(private readonly deps: IndexPagesDeps) {
    this.#logger = deps.logger.child({ component: 'index-pages' })
    this.#recent = new Lru(deps.memoryBytes ?? INDEX_PAGES_MEMORY_BYTES, (held) => held.bytes)
    this.#freshness = new Freshness({ logger: this.#logger, now: deps.now })
  }

  /** The parsed page; ProjectUnknownError when the upstreams do not have the project. */
  async get<T>(source: IndexPageSource, parse: (page: UpstreamPage) => T): Promise<CachedPage<T>> {
    const { served, cache, upstream } = await this.#freshness.readThrough(
      this.#policy(source, parse),
    )
    return { page: served as T, cache, upstream }
  }

  /**
   * The parsed page when `get` would answer it from memory as a plain hit
   * (held, fresh, not yet due for its refresh ahead, no "not found"
   * remembered), without a promise; undefined otherwise, and then `get`
   * answers. A warm page GET is mostly this.
   */
  held<T>(source: IndexPageSource): CachedPage<T> | undefined {
    const key = pageKey(source)
    const held = this.#recent.get(key)
    if (held === undefined) return undefined
    const { record } = held
    const freshness = this.#freshness
    if (!freshness.fresh(source, record) || freshness.due(source, record)) return undefined
    if (freshness.negatives.has(key) || record.page === null || record.page === undefined)
      return undefined
    return { page: record.page as T, cache: 'hit', upstream: record.upstream }
  }

  /** The project's stored page as kept, without asking any upstream; undefined when none is. */
  async peek(index: string, project: string): Promise<unknown> {
    const stored = await this.deps.metadata.getDocument(index, project)
    return stored?.page ?? undefined
  }

  /**
   * Rewrites the project's stored page with `update` (given the page kept now,
   * if any), as its upstream gave it at `fetchedAt` (an imported bundle). The
   * ETag goes: the page no longer is the upstream's answer it named.
   */
  async merge(
    index: string,
    project: string,
    update: (kept: unknown) => unknown,
    fetchedAt: number,
  ): Promise<void> {
    const stored = await this.deps.metadata.getDocument(index, project)
    const kept = stored && stored.page !== null ? stored : undefined
    const record: DocumentRecord = {
      fetchedAt: kept ? Math.min(kept.fetchedAt, fetchedAt) : fetchedAt,
      ...(kept?.upstream ? { upstream: kept.upstream } : {}),
      page: update(kept?.page),
    }
    await this.deps.metadata.putDocument(index, project, record)
    this.#recent.delete(pageKey({ index, project }))
    this.#freshness.negatives.delete(pageKey({ index, project }))
  }

  /** Resolves when no page load runs (refreshes ahead of the TTL included). */
  async idle(): Promise<void> {
    await this.#freshness.idle()
  }

  /** Projects no upstream has, each for its source's negative TTL. */
  get negatives(): NegativeCache {
    return this.#freshness.negatives
  }

  #policy(
    source: IndexPageSource,
    parse: (page: UpstreamPage) => unknown,
  ): FreshnessPolicy<KeptPage, unknown> {
    const { metadata } = this.deps
    const key = pageKey(source)
    return {
      key,
      ttlMs: source.ttlMs,
      what: 'index page',
      read: () => this.#read(source),
      write: (kept) => this.#put(source, kept),
      remove: async () => {
        this.#recent.delete(key)
        await metadata.deleteDocument(source.index, source.project)
      },
      serve: (kept) => kept.value.page,
      load: (previous) => this.#load(source, parse, previous),
      refreshAhead: true,
      notFound: {
        ttlMs: source.negativeTtlMs,
        matches: (error) => error instanceof ProjectUnknownError,
        error: () => new ProjectUnknownError(source.index, source.project),
        keep: source.keepOnNotFound,
      },
    }
  }

  /**
   * The page in memory while it is fresh (saving reading and parsing it from
   * the store on every file request), else the stored one: another replica may
   * have renewed it. When the store fails, the page in memory still counts.
   */
  async #read(source: IndexPageSource): Promise<Kept<KeptPage> | undefined> {
    const key = pageKey(source)
    const held = this.#recent.get(key)
    if (held && this.#freshness.fresh(source, held.record)) return fromRecord(held.record)
    let stored: SizedDocument | undefined
    try {
      stored = await this.deps.metadata.readDocument(source.index, source.project)
    } catch (error) {
      if (!held) throw error
      this.#logger.warn({ key, err: error }, 'could not read the cached index page')
      return fromRecord(held.record)
    }
    // `page: null` is a negative answer stored by an older version: not a page.
    const page = stored && stored.record.page !== null ? stored : undefined
    if (page) this.#recent.set(key, page)
    const record = page?.record ?? held?.record
    return record && fromRecord(record)
  }

  async #load(
    source: IndexPageSource,
    parse: (page: UpstreamPage) => unknown,
    previous: Kept<KeptPage> | undefined,
  ): Promise<Loaded<KeptPage, unknown>> {
    const etag = previous?.value.etag
    const answer = await source.remote.page(
      source.project,
      previous && etag !== undefined ? { etag, upstream: previous.upstream } : undefined,
    )
    const { upstream } = answer
    if ('unchanged' in answer) {
      if (!previous) throw new Error('an upstream answered 304 to an unconditional request')
      return { kept: { ...previous, fetchedAt: this.deps.now() }, cache: 'revalidated', upstream }
    }
    const value = { page: parse(answer.page), ...(answer.etag ? { etag: answer.etag } : {}) }
    const kept = { fetchedAt: this.deps.now(), upstream, value }
    this.#bodyBytes.set(kept, answer.page.body.length)
    return { kept, cache: 'miss', upstream }
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
    for (const mirror of source.remote.mirrors) {
      if (mirror === except) continue
      try {
        const page = parse(await source.remote.pageFrom(source.project, mirror))
        pages.push({ page, upstream: mirror })
      } catch (error) {
        this.#logger.info(
          { upstream: mirror, project: source.project, err: error },
          'another mirror could not give the page',
        )
      }
    }
    return pages
  }

  /**
   * Stores the page and holds it in memory, weighed by its stored size (or,
   * when the store failed, the size of the upstream body it was parsed from,
   * else its JSON size).
   */
  async #put(source: IndexPageSource, kept: Kept<KeptPage>): Promise<void> {
    const record = toRecord(kept)
    let bytes: number | undefined
    try {
      bytes = await this.deps.metadata.putDocument(source.index, source.project, record)
    } finally {
      bytes ??= this.#bodyBytes.get(kept) ?? Buffer.byteLength(JSON.stringify(record))
      this.#recent.set(pageKey(source), { record, bytes })
    }
  }
}

/** A page as kept: parsed, with the ETag of the answer it was parsed from. */
interface KeptPage {
  readonly page: unknown
  readonly etag?: string
}

function toRecord(kept: Kept<KeptPage>): DocumentRecord {
  const { fetchedAt, upstream, value } = kept
  return {
    fetchedAt,
    ...(upstream ? { upstream } : {}),
    page: value.page,
    ...(value.etag ? { etag: value.etag } : {}),
  }
}

function fromRecord(record: DocumentRecord): Kept<KeptPage> {
  const { fetchedAt, upstream, page, etag } = record
  return { fetchedAt, upstream, value: { page, ...(etag ? { etag } : {}) } }
}

function pageKey(source: Pick<IndexPageSource, 'index' | 'project'>): string {
  return `${source.index} ${source.project}`
}
