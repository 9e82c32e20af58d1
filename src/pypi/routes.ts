/**
 * The PyPI simple API (PEP 503, PEP 691) of every configured index:
 * `/simple/<project>/` for the default index, `/pypi/<index>/simple/<project>/`
 * for any index, and the file URLs the served pages link to,
 * `/pypi/<index>/files/<project>/<sha256>/<filename>` (PEP 658 metadata at the
 * same URL plus `.metadata`). Names are validated before anything touches the
 * cache or an upstream; a name that is not normalized redirects (301).
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { PullTarget } from '../auth/policy.ts'
import type { PullGuard } from '../pull-guard.ts'
import { NO_HASH, serveFile } from './files.ts'
import { serveLegacyJson } from './legacy-json.ts'
import { serveProjectList } from './project-list.ts'
import { projectPages } from './pages.ts'
import { RenderedPages } from './rendered-pages.ts'
import { PypiHttpError } from './http-errors.ts'
import type { ProjectPage } from './model.ts'
import { isProjectName, normalizeProjectName } from './names.ts'
import { negotiateSimple } from './negotiate.ts'
import { renderProjectHtml } from './render-html.ts'
import { renderProjectJson } from './render-json.ts'
import { indexTarget, type IndexTarget, type PypiRoutesDeps } from './target.ts'

/** What the routes need besides what serving needs: who may pull what. */
export interface PypiRouteGuard {
  readonly guard: PullGuard
}

export function registerPypiRoutes(
  app: FastifyInstance,
  deps: PypiRoutesDeps & PypiRouteGuard,
): void {
  const config = { protocol: 'pypi' }
  const defaultIndex = deps.indexes.find((i) => i.default)?.name
  const rendered = new RenderedPages()
  const page = async (request: FastifyRequest, reply: FastifyReply) => {
    const { index, project } = request.params as { index?: string; project: string }
    const where = target(deps, request, index ?? defaultIndex)
    // The route template, never the request URL, gives the normalized page's URL.
    const home = `${index === undefined ? '' : where.prefix}/simple/`
    return servePage(deps, rendered, where, { raw: project, home }, request, reply)
  }
  const list = async (request: FastifyRequest, reply: FastifyReply) => {
    const { index } = request.params as { index?: string }
    const where = target(deps, request, index ?? defaultIndex)
    deps.guard(request, reply, { protocol: 'pypi', pool: where.index.name })
    return serveProjectList(deps.streamed, where, request, reply)
  }
  app.get('/simple/', { config }, list)
  app.get('/pypi/:index/simple/', { config }, list)
  app.get('/simple/:project/', { config }, page)
  app.get('/simple/:project', { config }, page)
  app.get('/pypi/:index/simple/:project/', { config }, page)
  app.get('/pypi/:index/simple/:project', { config }, page)
  const legacy = async (request: FastifyRequest, reply: FastifyReply) => {
    const params = request.params as { project: string; version?: string }
    const where = target(deps, request, defaultIndex)
    guardProject(deps, request, reply, where, params.project)
    return serveLegacyJson(deps, where, params, reply)
  }
  app.get('/pypi/:project/json', { config }, legacy)
  app.get('/pypi/:project/:version/json', { config }, legacy)
  app.get('/pypi/:index/files/:project/:hash/:filename', { config }, async (request, reply) => {
    const params = request.params as Record<'index' | 'project' | 'hash' | 'filename', string>
    const where = target(deps, request, params.index)
    guardProject(deps, request, reply, where, params.project)
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

/** The guard, for a valid project name (an invalid one is a 404 further on, touching nothing). */
function guardProject(
  deps: PypiRouteGuard,
  request: FastifyRequest,
  reply: FastifyReply,
  where: IndexTarget,
  raw: string,
): void {
  if (!isProjectName(raw)) return
  const pulled = { protocol: 'pypi', pool: where.index.name, name: normalizeProjectName(raw) }
  deps.guard(request, reply, pulled as PullTarget)
}

async function servePage(
  deps: PypiRoutesDeps & PypiRouteGuard,
  rendered: RenderedPages,
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
  guardProject(deps, request, reply, where, project)
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
  const key = `${where.index.name} ${project} ${negotiated.format} ${where.prefix}`
  const body = rendered.body(key, page, () =>
    negotiated.format === 'json'
      ? renderProjectJson(page, fileUrl)
      : renderProjectHtml(page, fileUrl),
  )
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
