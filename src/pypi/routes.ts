/**
 * The PyPI simple API (PEP 503, PEP 691) of every configured index:
 * `/simple/<project>/` for the default index, `/pypi/<index>/simple/<project>/`
 * for any index, and the file URLs the served pages link to,
 * `/pypi/<index>/files/<project>/<sha256>/<filename>` (PEP 658 metadata at the
 * same URL plus `.metadata`). Names are validated before anything touches the
 * cache or an upstream; a name that is not normalized redirects (301).
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { NO_HASH, serveFile } from './files.ts'
import { serveLegacyJson } from './legacy-json.ts'
import { serveProjectList } from './project-list.ts'
import { projectPages } from './pages.ts'
import { PypiHttpError } from './http-errors.ts'
import type { ProjectPage } from './model.ts'
import { isProjectName, normalizeProjectName } from './names.ts'
import { negotiateSimple } from './negotiate.ts'
import { renderProjectHtml } from './render-html.ts'
import { renderProjectJson } from './render-json.ts'
import { indexTarget, type IndexTarget, type PypiRoutesDeps } from './target.ts'

export function registerPypiRoutes(app: FastifyInstance, deps: PypiRoutesDeps): void {
  const config = { protocol: 'pypi' }
  const defaultIndex = deps.indexes.find((i) => i.default)?.name
  const page = async (request: FastifyRequest, reply: FastifyReply) => {
    const { index, project } = request.params as { index?: string; project: string }
    const where = target(deps, request, index ?? defaultIndex)
    // The route template, never the request URL, gives the normalized page's URL.
    const home = `${index === undefined ? '' : where.prefix}/simple/`
    return servePage(deps, where, { raw: project, home }, request, reply)
  }
  const list = async (request: FastifyRequest, reply: FastifyReply) => {
    const { index } = request.params as { index?: string }
    return serveProjectList(
      deps.streamed,
      target(deps, request, index ?? defaultIndex),
      request,
      reply,
    )
  }
  app.get('/simple/', { config }, list)
  app.get('/pypi/:index/simple/', { config }, list)
  app.get('/simple/:project/', { config }, page)
  app.get('/simple/:project', { config }, page)
  app.get('/pypi/:index/simple/:project/', { config }, page)
  app.get('/pypi/:index/simple/:project', { config }, page)
  const legacy = async (request: FastifyRequest, reply: FastifyReply) => {
    const params = request.params as { project: string; version?: string }
    return serveLegacyJson(deps, target(deps, request, defaultIndex), params, reply)
  }
  app.get('/pypi/:project/json', { config }, legacy)
  app.get('/pypi/:project/:version/json', { config }, legacy)
  app.get('/pypi/:index/files/:project/:hash/:filename', { config }, async (request, reply) => {
    const params = request.params as Record<'index' | 'project' | 'hash' | 'filename', string>
    const where = target(deps, request, params.index)
    return serveFile(deps, where, params, reply, projectPages(deps, where))
  })
}

function target(
  deps: PypiRoutesDeps,
  request: FastifyRequest,
  name: string | undefined,
): IndexTarget {
  const where = indexTarget(deps, name)
  if (!where) throw new PypiHttpError(404, 'no such index')
  request.pool = where.index.name
  return where
}

async function servePage(
  deps: PypiRoutesDeps,
  where: IndexTarget,
  name: { readonly raw: string; readonly home: string },
  request: FastifyRequest,
  reply: FastifyReply,
): Promise<FastifyReply> {
  const { raw } = name
  if (!isProjectName(raw)) throw new PypiHttpError(404, 'not a valid project name')
  const project = normalizeProjectName(raw)
  if (project !== raw || request.routeOptions.url?.endsWith('/') !== true) {
    // PEP 503: the normalized URL, with its trailing slash, is the page's one name.
    return reply.redirect(`${name.home}${project}/`, 301)
  }
  const format = (request.query as { format?: unknown }).format
  const negotiated = negotiateSimple(
    request.headers.accept,
    typeof format === 'string' ? format : undefined,
  )
  if (!negotiated.acceptable)
    throw new PypiHttpError(406, `acceptable types: ${negotiated.offered.join(', ')}`)
  const { page, cache, upstream } = await projectPages(deps, where).load(project)
  const fileUrl = (file: ProjectPage['files'][number]) =>
    `${where.prefix}/files/${project}/${file.hashes.sha256 ?? NO_HASH}/${encodeURIComponent(file.filename)}`
  const body =
    negotiated.format === 'json'
      ? renderProjectJson(page, fileUrl)
      : renderProjectHtml(page, fileUrl)
  const artifact = {
    protocol: 'pypi',
    pool: where.index.name,
    subject: project,
    reference: '/simple/',
    cache,
    upstream,
  } as const
  return reply
    .header('content-type', negotiated.contentType)
    .header('vary', 'Accept')
    .sendPull(artifact, body)
}
