/**
 * The PyPI simple API (PEP 503, PEP 691) of every configured index:
 * `/simple/<project>/` for the default index, `/pypi/<index>/simple/<project>/`
 * for any index, and the file URLs the served pages link to,
 * `/pypi/<index>/files/<project>/<sha256>/<filename>` (PEP 658 metadata at the
 * same URL plus `.metadata`). Names are validated before anything touches the
 * cache or an upstream; a name that is not normalized redirects (301).
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { PullGuard } from '../pull-guard.ts'
import { NO_HASH, serveFile } from './files.ts'
import { serveLegacyJson } from './legacy-json.ts'
import { serveProjectList } from './project-list.ts'
import { projectPages, type ProjectPages } from './pages.ts'
import { RenderedPages } from './rendered-pages.ts'
import { PypiHttpError } from './http-errors.ts'
import type { CachedPage } from '../cache/index-pages.ts'
import type { ProjectPage } from './model.ts'
import { isProjectName, normalizeProjectName } from './names.ts'
import { negotiateSimple, type Negotiated } from './negotiate.ts'
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
  // Each index's target and page source are made once: a request only looks them up.
  const served = new Map<string, ServedIndex>()
  for (const { name } of deps.indexes) {
    const where = indexTarget(deps, name)
    if (where) served.set(name, { where, pages: projectPages(deps, where) })
  }
  const target = (request: FastifyRequest, name: string | undefined): ServedIndex => {
    const found = name === undefined ? undefined : served.get(name)
    if (!found) throw new PypiHttpError(404, 'no such index')
    request.pool = found.where.index.name
    return found
  }
  // `slash`: whether the route's template ends in `/`, the page's one name (PEP 503).
  const page = (slash: boolean) => (request: FastifyRequest, reply: FastifyReply) => {
    const { index, project } = request.params as { index?: string; project: string }
    const found = target(request, index ?? defaultIndex)
    // The route template, never the request URL, gives the normalized page's URL.
    const home = `${index === undefined ? '' : found.where.prefix}/simple/`
    return servePage(deps, rendered, found, { raw: project, home, slash }, request, reply)
  }
  const list = async (request: FastifyRequest, reply: FastifyReply) => {
    const { index } = request.params as { index?: string }
    const { where } = target(request, index ?? defaultIndex)
    deps.guard(request, reply, { protocol: 'pypi', pool: where.index.name })
    return serveProjectList(deps.streamed, where, request, reply)
  }
  app.get('/simple/', { config }, list)
  app.get('/pypi/:index/simple/', { config }, list)
  app.get('/simple/:project/', { config }, page(true))
  app.get('/simple/:project', { config }, page(false))
  app.get('/pypi/:index/simple/:project/', { config }, page(true))
  app.get('/pypi/:index/simple/:project', { config }, page(false))
  const legacy = async (request: FastifyRequest, reply: FastifyReply) => {
    const params = request.params as { project: string; version?: string }
    const { where } = target(request, defaultIndex)
    guardProject(deps, request, reply, where, params.project)
    return serveLegacyJson(deps, where, params, reply)
  }
  app.get('/pypi/:project/json', { config }, legacy)
  app.get('/pypi/:project/:version/json', { config }, legacy)
  app.get('/pypi/:index/files/:project/:hash/:filename', { config }, async (request, reply) => {
    const params = request.params as Record<'index' | 'project' | 'hash' | 'filename', string>
    const { where, pages } = target(request, params.index)
    guardProject(deps, request, reply, where, params.project)
    return serveFile(deps, where, params, reply, pages)
  })
}

/** A configured index, ready to serve. */
interface ServedIndex {
  readonly where: IndexTarget
  readonly pages: ProjectPages
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
  deps.guard(request, reply, {
    protocol: 'pypi',
    pool: where.index.name,
    name: normalizeProjectName(raw),
  })
}

/**
 * Not async: a page held in memory is answered before this returns
 * (undefined, as Fastify expects of a route that sent its reply), without a
 * promise per request; only a page to load returns one.
 */
function servePage(
  deps: PypiRoutesDeps & PypiRouteGuard,
  rendered: RenderedPages,
  { where, pages }: ServedIndex,
  name: { readonly raw: string; readonly home: string; readonly slash: boolean },
  request: FastifyRequest,
  reply: FastifyReply,
): Promise<FastifyReply> | undefined {
  const { raw } = name
  if (!isProjectName(raw)) throw new PypiHttpError(404, 'not a valid project name')
  const project = normalizeProjectName(raw)
  if (project !== raw || !name.slash) {
    // PEP 503: the normalized URL, with its trailing slash, is the page's one name.
    reply.redirect(`${name.home}${project}/`, 301)
    return undefined
  }
  deps.guard(request, reply, { protocol: 'pypi', pool: where.index.name, name: project })
  const format = (request.query as { format?: unknown }).format
  const negotiated = negotiateSimple(
    request.headers.accept,
    typeof format === 'string' ? format : undefined,
  )
  if (!negotiated.acceptable)
    throw new PypiHttpError(406, `acceptable types: ${negotiated.offered.join(', ')}`)
  const held = pages.held(project)
  if (held) {
    sendPage(rendered, where, project, negotiated, held, reply)
    return undefined
  }
  return pages
    .load(project)
    .then((loaded) => sendPage(rendered, where, project, negotiated, loaded, reply))
}

/** The page in the negotiated format, rendered once per page object (RenderedPages). */
function sendPage(
  rendered: RenderedPages,
  where: IndexTarget,
  project: string,
  negotiated: Negotiated,
  { page, cache, upstream }: CachedPage<ProjectPage>,
  reply: FastifyReply,
): FastifyReply {
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
