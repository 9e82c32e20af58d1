/**
 * GET /simple/ and /pypi/<index>/simple/: the index's project list, tens of MB
 * on pypi.org, cached for a long TTL (clients such as pip never read it;
 * people and tools browsing do). The upstream's HTML list is parsed as it
 * streams into project names, and the names are what is stored; every answer
 * is rendered from them in the negotiated format (PEP 503 HTML or PEP 691
 * JSON) with the negotiated Content-Type, so nothing the upstream wrote,
 * markup or header, reaches a client.
 */
import { pipeline } from 'node:stream'
import type { IncomingHttpHeaders } from 'node:http'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { UpstreamDocumentUnusableError } from '../cache/errors.ts'
import type { StreamedDocuments } from '../cache/streamed-documents.ts'
import { headerValue } from './remote.ts'
import { PypiHttpError } from './http-errors.ts'
import { negotiateSimple } from './negotiate.ts'
import { projectNamesFromHtml } from './parse-project-list.ts'
import { renderProjectList } from './render-project-list.ts'
import type { IndexTarget } from './target.ts'

/** How long the project list is served before the upstream is asked again. */
export const PROJECT_LIST_TTL_MS = 60 * 60_000
/** Largest upstream project list accepted (pypi.org's HTML list is about 30 MiB). */
export const MAX_PROJECT_LIST_BYTES = 512 * 1024 * 1024
/** The metadata key of the stored names (not the upstream's bytes, which were kept before). */
const NAMES_KEY = 'list:names'

export async function serveProjectList(
  streamed: StreamedDocuments,
  where: IndexTarget,
  request: FastifyRequest,
  reply: FastifyReply,
): Promise<FastifyReply> {
  const format = (request.query as { format?: unknown }).format
  const negotiated = negotiateSimple(
    request.headers.accept,
    typeof format === 'string' ? format : undefined,
  )
  if (!negotiated.acceptable)
    throw new PypiHttpError(406, `acceptable types: ${negotiated.offered.join(', ')}`)
  const names = await streamed.get(
    where.index.name,
    NAMES_KEY,
    PROJECT_LIST_TTL_MS,
    where.remote.projectList(),
    { maxBytes: MAX_PROJECT_LIST_BYTES, transform: htmlToNames },
  )
  const page = pipeline(names.stream, renderProjectList(negotiated.format), () => undefined)
  return reply.header('content-type', negotiated.contentType).header('vary', 'Accept').send(page)
}

/** The parser of an HTML answer; a JSON answer (HTML was asked for) is refused before it is read. */
function htmlToNames(headers: IncomingHttpHeaders) {
  const type = headerValue(headers, 'content-type')?.split(';')[0]?.trim().toLowerCase() ?? ''
  if (type.includes('json'))
    throw new UpstreamDocumentUnusableError('project list', `answered ${type}, not HTML`)
  return projectNamesFromHtml()
}
