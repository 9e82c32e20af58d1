/**
 * GET /simple/ and /pypi/<index>/simple/: the index's project list, tens of MB
 * on pypi.org, streamed from the upstream and cached for a long TTL (clients
 * such as pip never read it; people and tools browsing do). The JSON form
 * (PEP 691) holds only names and passes through; in the HTML form every link
 * is rewritten to the relative `<project>/`, which resolves under whichever
 * index URL the client used.
 */
import { Transform } from 'node:stream'
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { StreamedDocuments } from '../cache/streamed-documents.ts'
import { PypiHttpError } from './http-errors.ts'
import { isProjectName, normalizeProjectName } from './names.ts'
import { SIMPLE_MEDIA_TYPES, negotiateSimple } from './negotiate.ts'
import type { IndexTarget } from './routes.ts'

/** How long the project list is served before the upstream is asked again. */
export const PROJECT_LIST_TTL_MS = 60 * 60_000
/** Longest run of HTML without a '>' held while rewriting links; beyond it, bytes pass as they are. */
const MAX_HELD_CHARS = 64 * 1024

export async function serveProjectList(
  lists: StreamedDocuments,
  where: IndexTarget,
  request: FastifyRequest,
  reply: FastifyReply,
): Promise<FastifyReply> {
  const negotiated = negotiateSimple(request.headers.accept)
  if (!negotiated.acceptable)
    throw new PypiHttpError(406, `acceptable types: ${negotiated.offered.join(', ')}`)
  const json = negotiated.format === 'json'
  const list = await lists.get(
    where.index.name,
    json ? 'list:json' : 'list:html',
    PROJECT_LIST_TTL_MS,
    {
      pool: where.pool,
      path: '',
      headers: {
        accept: json
          ? `${SIMPLE_MEDIA_TYPES.json}, ${SIMPLE_MEDIA_TYPES.html};q=0.1`
          : `${SIMPLE_MEDIA_TYPES.html}, ${SIMPLE_MEDIA_TYPES.legacyHtml};q=0.5`,
      },
    },
  )
  const type = list.contentType ?? SIMPLE_MEDIA_TYPES.legacyHtml
  const isJson = type.toLowerCase().includes('json')
  reply.header('content-type', type).header('vary', 'Accept')
  return reply.send(isJson ? list.stream : list.stream.pipe(relativeProjectLinks()))
}

/** Rewrites every `href` of an HTML project list to the relative `<normalized project>/`. */
export function relativeProjectLinks(): Transform {
  let held = ''
  const rewrite = (html: string) =>
    html.replace(/href\s*=\s*(["'])([^"']*)\1/gi, (whole, quote: string, href: string) => {
      const name = href.split(/[?#]/)[0]?.split('/').filter(Boolean).at(-1) ?? ''
      return isProjectName(name) ? `href=${quote}${normalizeProjectName(name)}/${quote}` : whole
    })
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      held += chunk.toString('utf8')
      const end = held.lastIndexOf('>') + 1
      if (end === 0 && held.length < MAX_HELD_CHARS) {
        callback()
        return
      }
      const ready = end === 0 ? held : held.slice(0, end)
      held = end === 0 ? '' : held.slice(end)
      callback(null, rewrite(ready))
    },
    flush(callback) {
      callback(null, rewrite(held))
    },
  })
}
