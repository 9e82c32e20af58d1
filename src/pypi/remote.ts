/**
 * PyPI's one door to its upstreams: an index's project pages (conditional
 * GET with the ETag, to the mirror that issued it), its `/simple/` project
 * list and the legacy JSON API beside it. The rest of pypi/ and cache/ never
 * spell an upstream URL; the rest of pypi/ never imports upstream/.
 */
import type { PageRemote, RemotePage, UpstreamPage } from '../cache/index-pages.ts'
import { ProjectUnknownError, isUpstreamFailure } from '../cache/errors.ts'
import { UpstreamNotFoundError, UpstreamStatusError } from '../upstream/errors.ts'
import { fetchDocument, headerValue, type FetchedDocument } from '../upstream/fetch-document.ts'
import type { Mirror } from '../upstream/mirror.ts'
import type { UpstreamPool } from '../upstream/pool.ts'
import type { UpstreamSource } from '../upstream/source.ts'
import { SIMPLE_MEDIA_TYPES } from './negotiate.ts'
import { UPSTREAM_PAGE_ACCEPT } from './upstream-page.ts'

export { headerValue }

/** An index's mirrors (upstream/pool.ts), as the routes are given them. */
export type IndexPool = UpstreamPool

/** Largest index page accepted (the biggest projects' pages on pypi.org are a few MB). */
export const MAX_INDEX_PAGE_BYTES = 64 * 1024 * 1024

export class PypiRemote implements PageRemote {
  constructor(
    readonly pool: IndexPool,
    /** The index name, for errors. */
    readonly index: string,
  ) {}

  get mirrors(): readonly string[] {
    return this.pool.mirrors.map((m) => m.name)
  }

  /**
   * With If-None-Match only to the mirror that issued the ETag, and only when
   * it is the one asked first (the first in the configured order whose
   * circuit is closed); otherwise a plain GET in the pool's order, so an ETag
   * never goes to another mirror and a page fetched from a fallback mirror
   * during an outage comes from the first one again once it is back.
   */
  async page(
    project: string,
    kept: { readonly etag: string; readonly upstream: string | undefined } | undefined,
  ): Promise<RemotePage> {
    const mirrors = this.pool.mirrors
    const first = mirrors.find((m) => m.isAvailable()) ?? mirrors[0]
    const issuer = kept && first?.name === kept.upstream ? first : undefined
    let doc: FetchedDocument
    try {
      const revalidated =
        issuer && kept ? await this.#conditional(project, issuer, kept.etag) : undefined
      // The issuer failed (then it is not asked again), or there was nothing to revalidate.
      doc = revalidated ?? (await this.#get(project, issuer ? new Set([issuer]) : undefined))
    } catch (error) {
      if (error instanceof UpstreamNotFoundError) throw new ProjectUnknownError(this.index, project)
      throw error
    }
    const upstream = doc.mirror.name
    // Only the issuer is asked with If-None-Match, so only its answer may be a 304.
    if (doc.status === 304) return { unchanged: true, upstream }
    return { page: upstreamPage(doc), etag: headerValue(doc.headers, 'etag'), upstream }
  }

  async pageFrom(project: string, mirror: string): Promise<UpstreamPage> {
    const others = new Set(this.pool.mirrors.filter((m) => m.name !== mirror))
    return upstreamPage(await this.#get(project, others))
  }

  /** The index's `/simple/` list; HTML is the one format every PEP 503 index serves. */
  projectList(): UpstreamSource {
    return {
      pool: this.pool,
      path: '',
      headers: { accept: `${SIMPLE_MEDIA_TYPES.html}, ${SIMPLE_MEDIA_TYPES.legacyHtml};q=0.9` },
    }
  }

  /** `/pypi/<project>[/<version>]/json`, beside the simple API (`<base>/../pypi/...`). */
  legacyJson(project: string, tail: string): UpstreamSource {
    return {
      pool: this.pool,
      path: `../pypi/${project}/${tail}`,
      headers: { accept: 'application/json' },
    }
  }

  /** A conditional GET from `mirror` alone; undefined when it failed and other mirrors remain. */
  async #conditional(
    project: string,
    mirror: Mirror,
    etag: string,
  ): Promise<FetchedDocument | undefined> {
    const others = new Set(this.pool.mirrors.filter((m) => m !== mirror))
    try {
      return await fetchDocument(
        {
          pool: this.pool,
          path: pagePath(project),
          headers: { accept: UPSTREAM_PAGE_ACCEPT, 'if-none-match': etag },
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

  /** A plain GET in the pool's order, without the `exclude`d mirrors. */
  async #get(project: string, exclude: ReadonlySet<Mirror> | undefined): Promise<FetchedDocument> {
    return fetchDocument(
      { pool: this.pool, path: pagePath(project), headers: { accept: UPSTREAM_PAGE_ACCEPT } },
      { expect: [200], maxBytes: MAX_INDEX_PAGE_BYTES, ...(exclude ? { exclude } : {}) },
    )
  }
}

function pagePath(project: string): string {
  return `${encodeURIComponent(project)}/`
}

function upstreamPage(doc: FetchedDocument): UpstreamPage {
  return { body: doc.body, contentType: headerValue(doc.headers, 'content-type'), url: doc.url }
}
