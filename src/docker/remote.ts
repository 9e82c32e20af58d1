/**
 * Docker's one door to its upstreams: the registry API as one repository of
 * one registry sees it (distribution-spec: manifest GET/HEAD with Accept and
 * Docker-Content-Digest, the blob path, tag-list pages linked by `Link`,
 * referrers). The rest of docker/ and cache/ never spell an upstream URL.
 */
import { ManifestUnknownError, RepositoryUnknownError } from '../cache/errors.ts'
import type { FillSource } from '../cache/fill.ts'
import { MAX_MANIFEST_BYTES, type ManifestRemote, type RemoteManifest } from '../cache/manifests.ts'
import {
  fetchDocument,
  headerValue,
  type FetchedDocument,
  type FetchOptions,
} from '../upstream/fetch-document.ts'
import { UpstreamNotFoundError, UpstreamStatusError } from '../upstream/errors.ts'
import type { Mirror } from '../upstream/mirror.ts'
import type { UpstreamPool } from '../upstream/pool.ts'
import { MEDIA_TYPES } from './media-types.ts'

/** A registry's mirrors (upstream/pool.ts), as the routes are given them. */
export type RegistryPool = UpstreamPool

/** Bytes of one upstream tag-list page. */
const MAX_TAG_PAGE_BYTES = 4 * 1024 * 1024
/** Upstream pages followed for one list (at 1000 tags a page, 100k tags). */
const MAX_TAG_PAGES = 100
/** Tags asked for per upstream page. */
const UPSTREAM_PAGE_SIZE = 1000
/** A longer upstream `Link` header is ignored (the list ends there); real ones are ~100 bytes. */
export const MAX_LINK_HEADER_CHARS = 8 * 1024
/** Bytes of a referrers index accepted from an upstream. */
const MAX_REFERRERS_BYTES = 4 * 1024 * 1024

/** A referrers index as the upstream sent it; undefined body: it does not serve referrers. */
export interface RemoteReferrers {
  readonly body: Buffer
  /** The upstream's OCI-Filters-Applied header, unchecked. */
  readonly filtersApplied: string | undefined
}

export class DockerRemote implements ManifestRemote {
  /** Bearer scope for token-protected upstreams. */
  readonly #authScope: string

  constructor(
    readonly pool: RegistryPool,
    /** The repository as the upstream knows it (`library/busybox`). */
    readonly repository: string,
  ) {
    this.#authScope = `repository:${repository}:pull`
  }

  async get(
    reference: string,
    accept: string,
    options: { readonly byDigest: boolean; readonly exclude: ReadonlySet<Mirror> },
  ): Promise<RemoteManifest> {
    const doc = await this.#fetch(`v2/${this.repository}/manifests/${reference}`, {
      headers: { accept },
      tryNextOnNotFound: options.byDigest,
      expect: [200],
      maxBytes: MAX_MANIFEST_BYTES,
      exclude: options.exclude,
    }).catch((error: unknown) => {
      if (error instanceof UpstreamNotFoundError)
        throw new ManifestUnknownError(this.repository, reference)
      throw error
    })
    return {
      body: doc.body,
      contentType: headerValue(doc.headers, 'content-type'),
      digest: headerValue(doc.headers, 'docker-content-digest'),
      mirror: doc.mirror,
    }
  }

  /** A HEAD, which does not count against Docker Hub's pull limit. */
  async digestOf(
    tag: string,
    accept: string,
  ): Promise<{ digest: string | undefined; upstream: string }> {
    try {
      const head = await this.#fetch(`v2/${this.repository}/manifests/${tag}`, {
        method: 'HEAD',
        headers: { accept },
        expect: [200],
        maxBytes: 0,
      })
      return {
        digest: headerValue(head.headers, 'docker-content-digest'),
        upstream: head.mirror.name,
      }
    } catch (error) {
      if (error instanceof UpstreamNotFoundError)
        throw new ManifestUnknownError(this.repository, tag)
      // A registry that will not answer HEAD (405...) may still answer the GET.
      if (error instanceof UpstreamStatusError)
        return { digest: undefined, upstream: error.upstream }
      throw error
    }
  }

  /** Where the fill takes a blob from. */
  blob(digest: string): FillSource {
    return {
      pool: this.pool,
      path: `v2/${this.repository}/blobs/${digest}`,
      authScope: this.#authScope,
    }
  }

  /**
   * The bodies of the repository's tag-list pages, following the upstream's
   * Link headers on the mirror that answered the first page and its origin.
   */
  async *tagPages(): AsyncGenerator<Buffer> {
    let path: string | undefined = `v2/${this.repository}/tags/list?n=${UPSTREAM_PAGE_SIZE}`
    let mirror: Mirror | undefined
    for (let page = 0; path !== undefined && page < MAX_TAG_PAGES; page++) {
      const doc: FetchedDocument = await this.#fetch(path, {
        expect: [200],
        maxBytes: MAX_TAG_PAGE_BYTES,
        ...(mirror ? { prefer: mirror } : {}),
      }).catch((error: unknown) => {
        throw error instanceof UpstreamNotFoundError
          ? new RepositoryUnknownError(this.repository)
          : error
      })
      yield doc.body
      mirror = doc.mirror
      path = nextPath(headerValue(doc.headers, 'link'), doc)
    }
  }

  /** The upstream's referrers index for `digest`; undefined when it does not serve them (404). */
  async referrers(
    digest: string,
    artifactType: string | undefined,
  ): Promise<RemoteReferrers | undefined> {
    const query =
      artifactType === undefined ? '' : `?artifactType=${encodeURIComponent(artifactType)}`
    const doc = await this.#fetch(`v2/${this.repository}/referrers/${digest}${query}`, {
      headers: { accept: MEDIA_TYPES.ociIndex },
      expect: [200],
      maxBytes: MAX_REFERRERS_BYTES,
    }).catch((error: unknown) => {
      if (error instanceof UpstreamNotFoundError) return undefined
      throw error
    })
    if (!doc) return undefined
    return { body: doc.body, filtersApplied: headerValue(doc.headers, 'oci-filters-applied') }
  }

  #fetch(
    path: string,
    options: FetchOptions & {
      readonly headers?: Readonly<Record<string, string>>
      readonly tryNextOnNotFound?: boolean
    },
  ): Promise<FetchedDocument> {
    const { headers, tryNextOnNotFound, ...fetch } = options
    return fetchDocument(
      {
        pool: this.pool,
        path,
        authScope: this.#authScope,
        ...(headers ? { headers } : {}),
        ...(tryNextOnNotFound ? { tryNextOnNotFound } : {}),
      },
      fetch,
    )
  }
}

/**
 * The next page's path relative to the mirror's base URL, from a `Link:
 * </v2/...?...>; rel="next"` header (distribution-spec "Listing Tags"). The
 * target is resolved against the URL that answered, and followed only on the
 * mirror's own origin: an upstream cannot send us, or our credentials, to
 * another host (`</\/other-host/...>` resolves to other-host and stops here).
 */
function nextPath(link: string | undefined, doc: FetchedDocument): string | undefined {
  const target = nextLinkTarget(link)
  if (target === undefined) return undefined
  let url: URL
  try {
    url = new URL(target, doc.url)
  } catch {
    return undefined
  }
  const base = doc.mirror.base
  if (url.origin !== base.origin || !url.pathname.startsWith(base.pathname)) return undefined
  return `${url.pathname.slice(base.pathname.length)}${url.search}`
}

/**
 * The target of the `rel="next"` link in a Link header (RFC 8288), found in
 * one linear pass with `indexOf` (every search starts past the previous
 * match, so each character is looked at a bounded number of times). Headers
 * over `maxChars` are ignored.
 */
export function nextLinkTarget(
  header: string | undefined,
  maxChars = MAX_LINK_HEADER_CHARS,
): string | undefined {
  if (header === undefined || header.length > maxChars) return undefined
  let pos = 0
  while (pos < header.length) {
    const open = header.indexOf('<', pos)
    const close = open === -1 ? -1 : header.indexOf('>', open + 1)
    if (close === -1) return undefined
    // The link's parameters run from `>` to the next `,` (the next link-value).
    const comma = header.indexOf(',', close + 1)
    const end = comma === -1 ? header.length : comma
    if (hasRelNext(header.slice(close + 1, end))) return header.slice(open + 1, close)
    pos = end + 1
  }
  return undefined
}

/** Longest `rel` parameter looked at; real ones are `rel="next"` or a few relation types. */
const MAX_REL_PARAM_CHARS = 64
/** One `rel` parameter; only ever run on at most MAX_REL_PARAM_CHARS characters. */
const REL_PARAM_RE = /^\s*rel\s*=\s*"?([^"]*)"?\s*$/i

/** `; rel=next`, `; rel="next"` or `; rel="prev next"` among the parameters (case-insensitive). */
function hasRelNext(params: string): boolean {
  let at = params.indexOf(';')
  while (at !== -1) {
    const next = params.indexOf(';', at + 1)
    const end = next === -1 ? params.length : next
    if (end - at <= MAX_REL_PARAM_CHARS) {
      const rel = REL_PARAM_RE.exec(params.slice(at + 1, end))?.[1]
      if (rel?.toLowerCase().split(/\s+/).includes('next')) return true
    }
    at = next
  }
  return false
}
