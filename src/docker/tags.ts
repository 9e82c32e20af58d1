/**
 * GET /v2/<name>/tags/list: the upstream's whole tag list (its pages followed,
 * on the same mirror and origin, up to a byte cap), kept for the registry's
 * tagTTL and served stale when every upstream fails, then paginated here with
 * `n`/`last`.
 */
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { CachedDocuments } from '../cache/cached-documents.ts'
import { fetchDocument, headerValue, type FetchedDocument } from '../cache/documents.ts'
import {
  RepositoryUnknownError,
  UpstreamDocumentUnusableError,
  isNotFound,
} from '../cache/errors.ts'
import { OciError } from './errors.ts'
import { nextLink, paginate, parsePageQuery } from './pagination.ts'
import type { DockerTarget } from './target.ts'

/** Bytes of one upstream tag-list page. */
const MAX_TAG_PAGE_BYTES = 4 * 1024 * 1024
/** Upstream pages followed for one list (at 1000 tags a page, 100k tags). */
const MAX_TAG_PAGES = 100
/**
 * Bytes of tag names kept for one repository across all its pages, counted as
 * stored (JSON: each name plus quotes and comma): the list is one metadata
 * value (one Redis SET), so it must stay bounded.
 */
export const MAX_TAG_LIST_BYTES = 16 * 1024 * 1024
/** JSON bytes around each tag name in the stored list: two quotes and a comma. */
const STORED_BYTES_PER_TAG = 3
/** A longer upstream `Link` header is ignored (the list ends there); real ones are ~100 bytes. */
export const MAX_LINK_HEADER_CHARS = 8 * 1024
/** Tags asked for per upstream page. */
const UPSTREAM_PAGE_SIZE = 1000

export async function serveTags(
  documents: CachedDocuments,
  target: DockerTarget,
  request: FastifyRequest,
  reply: FastifyReply,
): Promise<FastifyReply> {
  const query = parsePageQuery(request.query as Record<string, unknown>)
  const { value: tags } = await documents.get(
    `docker-tags:${target.registry.name}`,
    target.repository,
    target.registry.tagTTL,
    () => loadTags(target),
  )
  const page = paginate(tags, query)
  if (page.next !== undefined) {
    const ns = (request.query as { ns?: unknown }).ns
    const next = typeof ns === 'string' ? `${page.next}&ns=${encodeURIComponent(ns)}` : page.next
    reply.header('link', nextLink(`/v2/${target.clientName}/tags/list`, next))
  }
  return reply.send({ name: target.clientName, tags: page.items })
}

/**
 * Every tag of the repository, following the upstream's Link headers on the
 * mirror that answered the first page. Only the parsed tags are kept, never
 * the pages, and at most MAX_TAG_LIST_BYTES of them.
 */
async function loadTags(target: DockerTarget): Promise<string[]> {
  const tags: string[] = []
  let bytes = 0
  let path: string | undefined = `v2/${target.repository}/tags/list?n=${UPSTREAM_PAGE_SIZE}`
  let mirror: FetchedDocument['mirror'] | undefined
  for (let page = 0; path !== undefined && page < MAX_TAG_PAGES; page++) {
    const doc: FetchedDocument = await fetchDocument(
      { pool: target.pool, path, authScope: target.authScope },
      { expect: [200], maxBytes: MAX_TAG_PAGE_BYTES, ...(mirror ? { prefer: mirror } : {}) },
    ).catch((error: unknown) => {
      throw isNotFound(error) ? new RepositoryUnknownError(target.repository) : error
    })
    for (const tag of parseTagPage(doc.body, target.repository)) {
      bytes += Buffer.byteLength(tag) + STORED_BYTES_PER_TAG
      if (bytes > MAX_TAG_LIST_BYTES) throw tagListTooLarge(target)
      tags.push(tag)
    }
    mirror = doc.mirror
    path = nextPath(headerValue(doc.headers, 'link'), doc)
  }
  return tags
}

function tagListTooLarge(target: DockerTarget): OciError {
  return new OciError(
    'UNAVAILABLE',
    { registry: target.registry.name },
    {
      status: 502,
      message: `the upstream tag list is over the ${MAX_TAG_LIST_BYTES / 1024 / 1024} MiB of tag names pullthrough keeps`,
    },
  )
}

function parseTagPage(body: Buffer, repository: string): string[] {
  let parsed: unknown
  try {
    parsed = JSON.parse(body.toString('utf8'))
  } catch (error) {
    throw new UpstreamDocumentUnusableError(`tag list of ${repository}`, 'not JSON', {
      cause: error,
    })
  }
  const tags = (parsed as { tags?: unknown } | null)?.tags
  // Distribution answers `"tags": null` for a repository without tags.
  if (tags === null || tags === undefined) return []
  if (!Array.isArray(tags) || !tags.every((tag) => typeof tag === 'string'))
    throw new UpstreamDocumentUnusableError(`tag list of ${repository}`, 'no tags array')
  return tags
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
