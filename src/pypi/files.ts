/**
 * GET /pypi/<index>/files/<project>/<sha256>/<filename>[.metadata]: a
 * distribution file (or its PEP 658 metadata) through the read-through cache,
 * keyed by the sha256 the index gave. The URL only names the file: where it
 * comes from is looked up in the project's page, so a request can never make
 * pullthrough fetch a URL the index did not list.
 */
import type { FastifyReply, FastifyRequest } from 'fastify'
import { isUpstreamFailure } from '../cache/errors.ts'
import type { Logger } from '../observability/logger.ts'
import type { Metrics } from '../observability/metrics.ts'
import type { PullContext, ReadThrough } from '../cache/read-through.ts'
import type { StreamedDocuments } from '../cache/streamed-documents.ts'
import { PypiHttpError } from './http-errors.ts'
import type { ProjectFile, ProjectPage } from './model.ts'
import { METADATA_SUFFIX, isDistFilename, isProjectName, normalizeProjectName } from './names.ts'
import type { ProjectPages } from './pages.ts'
import type { IndexTarget } from './routes.ts'

const SHA256_HEX = /^[a-f0-9]{64}$/
/** Stands for the sha256 in the URL of a file whose index gave none. */
export const NO_HASH = '_'

export interface FileDeps {
  readonly cache: ReadThrough
  /** Files without a sha256 in their index: streamed, then kept under the digest they had. */
  readonly files: StreamedDocuments
  readonly logger: Logger
  readonly metrics: Metrics
}

export async function serveFile(
  deps: FileDeps,
  where: IndexTarget,
  params: { readonly project: string; readonly hash: string; readonly filename: string },
  request: FastifyRequest,
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
  const same = (page: ProjectPage) =>
    page.files.find((f) => f.filename === distName && f.hashes.sha256 === hash)
  const listed = await pages.load(project)
  const file = same(listed.page)
  if (!file) throw new PypiHttpError(404, 'the index lists no such file')
  const pull: PullContext = {
    protocol: 'pypi',
    pool: where.index.name,
    subject: project,
    reference: filename,
    action: 'get',
    clientIp: request.ip,
  }
  const serve = (f: ProjectFile) => serveFrom(deps, where, f, metadata, pull)
  let served
  try {
    served = await serve(file)
  } catch (error) {
    if (!isUpstreamSide(error)) throw error
    // The listed source failed: another upstream of the index may list the very same file.
    const elsewhere = await pages.elsewhere(project, listed.upstream)
    served = await fromOtherMirrors(elsewhere, same, serve, deps.logger, error)
  }
  reply.header('content-type', metadata ? 'text/plain; charset=utf-8' : 'application/octet-stream')
  if (served.size !== undefined) reply.header('content-length', String(served.size))
  return reply.send(served.stream)
}

async function serveFrom(
  deps: FileDeps,
  where: IndexTarget,
  file: ProjectFile,
  metadata: boolean,
  pull: PullContext,
) {
  const sha256 = file.hashes.sha256 ?? ''
  const wanted = metadata ? metadataOf(file) : { url: file.url, sha256 }
  if (!wanted) throw new PypiHttpError(404, 'the index has no metadata file for this file')
  const location = where.files.locate(wanted.url)
  if (!location) throw new PypiHttpError(404, 'the file is on a host that is not allowed')
  return deps.cache.serve(
    `sha256:${wanted.sha256}`,
    { pool: location.pool, path: location.path },
    { pull },
  )
}

/** The first of the other mirrors' copies of the file that can be served; else `first` is thrown. */
async function fromOtherMirrors(
  elsewhere: readonly { page: ProjectPage; upstream: string }[],
  same: (page: ProjectPage) => ProjectFile | undefined,
  serve: (file: ProjectFile) => ReturnType<typeof serveFrom>,
  logger: Logger,
  first: unknown,
) {
  for (const { page, upstream } of elsewhere) {
    const file = same(page)
    if (!file) continue
    try {
      const served = await serve(file)
      logger.info(
        { project: page.name, file: file.filename, upstream },
        'file served from another mirror',
      )
      return served
    } catch (error) {
      if (!isUpstreamSide(error)) throw error
    }
  }
  throw first
}

/** Failures of the file's source, after which another mirror's copy is worth trying. */
function isUpstreamSide(error: unknown): boolean {
  const code = (error as { code?: string } | null)?.code
  return code === 'PT_BLOB_UNKNOWN' || isUpstreamFailure(error)
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
  const served = await deps.files.get(where.index.name, key, where.index.indexTTL, location)
  reply.header('content-type', 'application/octet-stream')
  return reply.send(served.stream)
}

/** The PEP 658 metadata file of `file`: its URL and sha256, when the index gave both. */
function metadataOf(file: ProjectFile): { url: string; sha256: string } | undefined {
  const meta = file.coreMetadata
  if (meta === undefined || meta === true || meta.sha256 === undefined) return undefined
  return { url: `${file.url}${METADATA_SUFFIX}`, sha256: meta.sha256 }
}
