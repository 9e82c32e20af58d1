/**
 * PyPI's legacy JSON API (`/pypi/<project>/json`, `/pypi/<project>/<version>/json`),
 * which poetry and dependency bots read: proxied from the default index's
 * upstreams (found beside their simple API, `<base>/../pypi/...`), with every
 * file URL rewritten to pullthrough. A file on a host the index does not allow,
 * or without a sha256, is left out: it could not be fetched through pullthrough.
 */
import type { FastifyReply, FastifyRequest } from 'fastify'
import { fetchDocument } from '../cache/documents.ts'
import { FillFailedError, ProjectUnknownError } from '../cache/errors.ts'
import { PypiHttpError } from './http-errors.ts'
import { isRecord } from './model.ts'
import { isDistFilename, isProjectName, normalizeProjectName } from './names.ts'
import type { IndexTarget } from './routes.ts'

/** Largest legacy JSON document accepted (the biggest projects' are tens of MB). */
const MAX_LEGACY_JSON_BYTES = 64 * 1024 * 1024
/** PEP 440 versions are short; this only keeps path segments sane. */
const VERSION_RE = /^[A-Za-z0-9][A-Za-z0-9._+!-]{0,127}$/

export async function serveLegacyJson(
  where: IndexTarget,
  params: { readonly project: string; readonly version?: string },
  request: FastifyRequest,
  reply: FastifyReply,
): Promise<FastifyReply> {
  const { project: raw, version } = params
  if (!isProjectName(raw) || (version !== undefined && !VERSION_RE.test(version)))
    throw new PypiHttpError(404, 'not a valid project or version')
  const project = normalizeProjectName(raw)
  const tail = version === undefined ? 'json' : `${encodeURIComponent(version)}/json`
  const doc = await fetchDocument(
    {
      pool: where.pool,
      path: `../pypi/${project}/${tail}`,
      headers: { accept: 'application/json' },
    },
    { maxBytes: MAX_LEGACY_JSON_BYTES },
  )
  if (doc.status === 404) throw new ProjectUnknownError(where.index.name, project)
  if (doc.status !== 200) throw new FillFailedError(project, `upstream answered ${doc.status}`)
  let parsed: unknown
  try {
    parsed = JSON.parse(doc.body.toString('utf8'))
  } catch (error) {
    throw new FillFailedError(project, 'upstream JSON API answer is not JSON', { cause: error })
  }
  if (!isRecord(parsed))
    throw new FillFailedError(project, 'upstream JSON API answer is not an object')
  const origin = `${request.protocol}://${request.host}`
  const rewrite = (file: unknown) => rewriteFile(file, project, where, origin)
  const out: Record<string, unknown> = { ...parsed }
  if (Array.isArray(parsed.urls)) out.urls = parsed.urls.flatMap(rewrite)
  if (isRecord(parsed.releases)) {
    out.releases = Object.fromEntries(
      Object.entries(parsed.releases).map(([v, files]) => [
        v,
        Array.isArray(files) ? files.flatMap(rewrite) : [],
      ]),
    )
  }
  return reply.header('content-type', 'application/json').send(JSON.stringify(out))
}

/** The file entry with its URL on pullthrough, or nothing when it could not be served. */
function rewriteFile(
  file: unknown,
  project: string,
  where: IndexTarget,
  origin: string,
): Record<string, unknown>[] {
  if (!isRecord(file) || typeof file.url !== 'string' || typeof file.filename !== 'string')
    return []
  const sha256 = isRecord(file.digests) ? file.digests.sha256 : undefined
  if (typeof sha256 !== 'string' || !/^[a-f0-9]{64}$/.test(sha256)) return []
  if (!isDistFilename(file.filename) || !where.files.allows(file.url)) return []
  const url = `${origin}${where.prefix}/files/${project}/${sha256}/${encodeURIComponent(file.filename)}`
  return [{ ...file, url }]
}
