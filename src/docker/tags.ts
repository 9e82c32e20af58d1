/**
 * GET /v2/<name>/tags/list: the upstream's whole tag list (its pages followed),
 * kept for the registry's tagTTL and served stale when every upstream fails,
 * then paginated here with `n`/`last`.
 */
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { CachedDocuments } from '../cache/cached-documents.ts'
import { fetchDocument, headerValue } from '../cache/documents.ts'
import { FillFailedError, RepositoryUnknownError } from '../cache/errors.ts'
import { nextLink, paginate, parsePageQuery } from './pagination.ts'
import type { DockerTarget } from './target.ts'

/** Bytes of one upstream tag-list page. */
const MAX_TAG_PAGE_BYTES = 4 * 1024 * 1024
/** Upstream pages followed for one list (at 1000 tags a page, 100k tags). */
const MAX_TAG_PAGES = 100
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

/** Every tag of the repository, following the upstream's Link headers. */
async function loadTags(target: DockerTarget): Promise<string[]> {
  const tags: string[] = []
  let path: string | undefined = `v2/${target.repository}/tags/list?n=${UPSTREAM_PAGE_SIZE}`
  for (let page = 0; path !== undefined && page < MAX_TAG_PAGES; page++) {
    const doc = await fetchDocument(
      { pool: target.pool, path, authScope: target.authScope },
      { maxBytes: MAX_TAG_PAGE_BYTES },
    )
    if (doc.status === 404) throw new RepositoryUnknownError(target.repository)
    if (doc.status !== 200)
      throw new FillFailedError(`${target.repository} tags`, `upstream answered ${doc.status}`)
    tags.push(...parseTagPage(doc.body, target.repository))
    path = nextPath(headerValue(doc.headers, 'link'))
  }
  return tags
}

function parseTagPage(body: Buffer, repository: string): string[] {
  let parsed: unknown
  try {
    parsed = JSON.parse(body.toString('utf8'))
  } catch (error) {
    throw new FillFailedError(`${repository} tags`, 'upstream tag list is not JSON', {
      cause: error,
    })
  }
  const tags = (parsed as { tags?: unknown } | null)?.tags
  // Distribution answers `"tags": null` for a repository without tags.
  if (tags === null || tags === undefined) return []
  if (!Array.isArray(tags) || !tags.every((tag) => typeof tag === 'string'))
    throw new FillFailedError(`${repository} tags`, 'upstream tag list has no tags array')
  return tags
}

/** The path of a `Link: </v2/...?...>; rel="next"` header, relative to the mirror's root. */
function nextPath(link: string | undefined): string | undefined {
  const match = link === undefined ? null : /<([^>]+)>\s*;\s*rel="?next"?/.exec(link)
  const target = match?.[1]
  if (target === undefined) return undefined
  // Only same-host paths are followed: an absolute URL could point anywhere.
  return target.startsWith('/') && !target.startsWith('//') ? target.slice(1) : undefined
}
