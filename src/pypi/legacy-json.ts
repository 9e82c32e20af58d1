/**
 * PyPI's legacy JSON API (`/pypi/<project>/json`, `/pypi/<project>/<version>/json`),
 * which poetry and dependency bots read: proxied from the default index's
 * upstreams (found beside their simple API, `<base>/../pypi/...`), with every
 * file URL rewritten to pullthrough. A file on a host the index does not allow,
 * or without a sha256, is left out: it could not be fetched through pullthrough.
 *
 * A document can be tens of MB: it is rewritten as it streams (one file entry
 * in memory at a time), fetched once per indexTTL however many clients ask,
 * stored, and served from disk; stale when every upstream fails. File URLs
 * never come from the request's Host: they are absolute under
 * server.publicUrl when it is set, else relative to the document's own URL.
 */
import type { FastifyReply } from 'fastify'
import { ProjectUnknownError } from '../cache/errors.ts'
import type { StreamedDocuments } from '../cache/streamed-documents.ts'
import { PypiHttpError } from './http-errors.ts'
import { isRecord } from './model.ts'
import { isDistFilename, isProjectName, normalizeProjectName } from './names.ts'
import { rewriteLegacyJson } from './rewrite-legacy-json.ts'
import type { IndexTarget } from './target.ts'

/** Largest legacy JSON document accepted (the biggest projects' are tens of MB). */
export const MAX_LEGACY_JSON_BYTES = 64 * 1024 * 1024
/** PEP 440 versions are short; this only keeps path segments sane. */
const VERSION_RE = /^[A-Za-z0-9][A-Za-z0-9._+!-]{0,127}$/

export interface LegacyJsonDeps {
  readonly streamed: StreamedDocuments
  /** server.publicUrl, when configured. */
  readonly publicUrl?: string | undefined
}

export async function serveLegacyJson(
  deps: LegacyJsonDeps,
  where: IndexTarget,
  params: { readonly project: string; readonly version?: string },
  reply: FastifyReply,
): Promise<FastifyReply> {
  const { project: raw, version } = params
  if (!isProjectName(raw) || (version !== undefined && !VERSION_RE.test(version)))
    throw new PypiHttpError(404, 'not a valid project or version')
  const project = normalizeProjectName(raw)
  const tail = version === undefined ? 'json' : `${encodeURIComponent(version)}/json`
  const prefix = filesPrefix(deps.publicUrl, where, version !== undefined)
  const rewrite = (file: Record<string, unknown>) => rewriteFile(file, project, where, prefix)
  const doc = await deps.streamed.get(
    where.index.name,
    // The stored document holds URLs under `prefix`: another prefix is another document.
    `legacy-json:${project}/${tail} ${prefix}`,
    where.index.indexTTL,
    where.remote.legacyJson(project, tail),
    {
      maxBytes: MAX_LEGACY_JSON_BYTES,
      transform: () => rewriteLegacyJson(rewrite),
      notFound: () => new ProjectUnknownError(where.index.name, project),
    },
  )
  return reply.header('content-type', 'application/json').send(doc.stream)
}

/**
 * Where the index's routes are, seen from the document: under publicUrl, else
 * relative to /pypi/<project>[/<version>]/json, whose directory is one or two
 * levels below /pypi/.
 */
function filesPrefix(
  publicUrl: string | undefined,
  where: IndexTarget,
  versioned: boolean,
): string {
  if (publicUrl !== undefined) return `${publicUrl.replace(/\/+$/, '')}${where.prefix}`
  return `${versioned ? '../..' : '..'}/${encodeURIComponent(where.index.name)}`
}

/** The file entry with its URL on pullthrough, or undefined when it could not be served. */
function rewriteFile(
  file: Record<string, unknown>,
  project: string,
  where: IndexTarget,
  prefix: string,
): Record<string, unknown> | undefined {
  if (typeof file.url !== 'string' || typeof file.filename !== 'string') return undefined
  const sha256 = isRecord(file.digests) ? file.digests.sha256 : undefined
  if (typeof sha256 !== 'string' || !/^[a-f0-9]{64}$/.test(sha256)) return undefined
  if (!isDistFilename(file.filename) || !where.files.allows(file.url)) return undefined
  const url = `${prefix}/files/${project}/${sha256}/${encodeURIComponent(file.filename)}`
  return { ...file, url }
}
