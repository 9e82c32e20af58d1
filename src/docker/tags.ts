/**
 * GET /v2/<name>/tags/list: the upstream's whole tag list (its pages followed,
 * on the same mirror and origin, up to a byte cap), kept for the registry's
 * tagTTL and served stale when every upstream fails, then paginated here with
 * `n`/`last`.
 */
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { CachedDocuments } from '../cache/cached-documents.ts'
import { UpstreamDocumentUnusableError } from '../cache/errors.ts'
import { OciError } from './errors.ts'
import { nextLink, paginate, parsePageQuery } from './pagination.ts'
import type { DockerTarget } from './target.ts'

/**
 * Bytes of tag names kept for one repository across all its pages, counted as
 * stored (JSON: each name plus quotes and comma): the list is one metadata
 * value (one Redis SET), so it must stay bounded.
 */
export const MAX_TAG_LIST_BYTES = 16 * 1024 * 1024
/** JSON bytes around each tag name in the stored list: two quotes and a comma. */
const STORED_BYTES_PER_TAG = 3

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
    () => upstreamTags(target),
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
 * Every tag of the repository, from the upstream's pages. Only the parsed
 * tags are kept, never the pages, and at most MAX_TAG_LIST_BYTES of them.
 */
export async function upstreamTags(
  target: Pick<DockerTarget, 'registry' | 'repository' | 'remote'>,
): Promise<string[]> {
  const tags: string[] = []
  let bytes = 0
  for await (const body of target.remote.tagPages()) {
    for (const tag of parseTagPage(body, target.repository)) {
      bytes += Buffer.byteLength(tag) + STORED_BYTES_PER_TAG
      if (bytes > MAX_TAG_LIST_BYTES) throw tagListTooLarge(target)
      tags.push(tag)
    }
  }
  return tags
}

function tagListTooLarge(target: Pick<DockerTarget, 'registry'>): OciError {
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
