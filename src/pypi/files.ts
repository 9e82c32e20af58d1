/**
 * GET /pypi/<index>/files/<project>/<sha256>/<filename>[.metadata]: a
 * distribution file (or its PEP 658 metadata) through the read-through cache,
 * keyed by the sha256 the index gave. The URL only names the file: where it
 * comes from is looked up in the project's page, so a request can never make
 * pullthrough fetch a URL the index did not list.
 */
import type { FastifyReply } from 'fastify'
import type { FillSource } from '../cache/fill.ts'
import type { Logger } from '../observability/logger.ts'
import type { ReadThrough } from '../cache/read-through.ts'
import type { StreamedDocuments } from '../cache/streamed-documents.ts'
import { PypiHttpError } from './http-errors.ts'
import type { ProjectFile } from './model.ts'
import { METADATA_SUFFIX, isDistFilename, isProjectName, normalizeProjectName } from './names.ts'
import type { ProjectPages } from './pages.ts'
import type { IndexTarget } from './target.ts'

const SHA256_HEX = /^[a-f0-9]{64}$/
/** Stands for the sha256 in the URL of a file whose index gave none. */
export const NO_HASH = '_'

export interface FileDeps {
  readonly cache: ReadThrough
  /** Files without a sha256 in their index: streamed, then kept under the digest they had. */
  readonly streamed: StreamedDocuments
  readonly logger: Logger
}

export async function serveFile(
  deps: FileDeps,
  where: IndexTarget,
  params: { readonly project: string; readonly hash: string; readonly filename: string },
  reply: FastifyReply,
  pages: ProjectPages,
): Promise<FastifyReply> {
  const { project, hash, filename } = params
  const metadata = filename.endsWith(METADATA_SUFFIX)
  const distName = metadata ? filename.slice(0, -METADATA_SUFFIX.length) : filename
  if (
    !isProjectName(project) ||
    normalizeProjectName(project) !== project ||
    !(SHA256_HEX.test(hash) || (hash === NO_HASH && !metadata)) ||
    !isDistFilename(distName)
  )
    throw new PypiHttpError(404, 'not a file of this index')
  if (hash === NO_HASH) return serveUnhashed(deps, where, project, distName, reply, pages)
  const listed = await pages.load(project)
  const file = listed.page.files.find((f) => f.filename === distName && f.hashes.sha256 === hash)
  if (!file) throw new PypiHttpError(404, 'the index lists no such file')
  const wanted = metadata ? metadataOf(file) : { url: file.url, sha256: hash }
  if (!wanted) throw new PypiHttpError(404, 'the index has no metadata file for this file')
  const location = where.files.locate(wanted.url)
  const digest = `sha256:${wanted.sha256}`
  // A file imported from a bundle may name a host this index does not fetch
  // from: it is served when the store has it (its sha256 vouches for it).
  const served = location
    ? await deps.cache.serve(digest, {
        ...location,
        // Asked for by the fill only when this source fails, before the first byte or mid-way.
        alternatives: () =>
          otherCopies(pages, where, project, listed.upstream, { distName, hash, metadata, digest }),
      } satisfies FillSource)
    : await deps.cache.serveStored(digest)
  if (!served) throw new PypiHttpError(404, 'the file is on a host that is not allowed')
  if (
    location &&
    served.upstream !== undefined &&
    served.upstream !== location.pool.mirrors[0]?.name
  ) {
    deps.logger.info(
      { project, file: filename, upstream: served.upstream },
      'file served from another mirror',
    )
  }
  reply.header('content-type', metadata ? 'text/plain; charset=utf-8' : 'application/octet-stream')
  if (served.size !== undefined) reply.header('content-length', String(served.size))
  const artifact = {
    ...pulled(where, project, filename),
    digest,
    cache: served.cache,
    upstream: served.upstream,
  }
  return reply.sendPull(artifact, served.body)
}

/**
 * The same file (filename and sha256; for metadata, the metadata's sha256 too)
 * as the index's other upstreams list it, on hosts files may come from.
 */
async function otherCopies(
  pages: ProjectPages,
  where: IndexTarget,
  project: string,
  except: string | undefined,
  want: { distName: string; hash: string; metadata: boolean; digest: string },
): Promise<FillSource[]> {
  const sources: FillSource[] = []
  for (const { page } of await pages.elsewhere(project, except)) {
    const file = page.files.find(
      (f) => f.filename === want.distName && f.hashes.sha256 === want.hash,
    )
    const copy = file && (want.metadata ? metadataOf(file) : { url: file.url, sha256: want.hash })
    if (!copy || `sha256:${copy.sha256}` !== want.digest) continue
    const location = where.files.locate(copy.url)
    if (location) sources.push(location)
  }
  return sources
}

/**
 * A file the index lists without a sha256 cannot be checked on the way in. It
 * is streamed through, hashed and kept under the digest it turned out to have,
 * and flagged in the log, so an operator can see which index lacks hashes.
 * Nothing vouches for the bytes, so they are kept per project and source URL
 * (another project listing the same filename elsewhere gets its own) and only
 * for the index's indexTTL; their size is capped by storage.maxBlobSize.
 */
async function serveUnhashed(
  deps: FileDeps,
  where: IndexTarget,
  project: string,
  filename: string,
  reply: FastifyReply,
  pages: ProjectPages,
): Promise<FastifyReply> {
  const { page } = await pages.load(project)
  const file = page.files.find((f) => f.filename === filename && f.hashes.sha256 === undefined)
  const location = file && where.files.locate(file.url)
  if (!location) throw new PypiHttpError(404, 'the index lists no such file')
  deps.logger.warn(
    { index: where.index.name, project, file: filename },
    'the index gives no sha256 for this file; served as fetched, unverified',
  )
  const key = `file:${project} ${file.url}`
  const served = await deps.streamed.get(where.index.name, key, where.index.indexTTL, location)
  reply.header('content-type', 'application/octet-stream')
  // No digest: nothing vouched for one before the bytes went out.
  const artifact = {
    ...pulled(where, project, filename),
    cache: served.cache,
    upstream: served.upstream,
  }
  return reply.sendPull(artifact, served.stream)
}

/** The pull event fields every file answer shares. */
function pulled(where: IndexTarget, project: string, filename: string) {
  return {
    protocol: 'pypi',
    pool: where.index.name,
    subject: project,
    reference: filename,
  } as const
}

/** The PEP 658 metadata file of `file`: its URL and sha256, when the index gave both. */
function metadataOf(file: ProjectFile): { url: string; sha256: string } | undefined {
  const meta = file.coreMetadata
  if (meta === undefined || meta === true || meta.sha256 === undefined) return undefined
  return { url: `${file.url}${METADATA_SUFFIX}`, sha256: meta.sha256 }
}
