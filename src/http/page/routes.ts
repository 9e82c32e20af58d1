/**
 * The status page under /-/: server-rendered HTML, readable without
 * JavaScript (charts are SVG drawn here), no external resources. With
 * `admin.token` set the browser asks for it (Basic credentials, the token as
 * the password).
 */
import { hostname } from 'node:os'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { DAY_MS } from '../../metadata/statistics.ts'
import { adminGuard } from '../api/access.ts'
import { catalogRows } from '../../insight/catalog.ts'
import { upstreamHealth, type ApiDeps } from '../api/routes.ts'
import type { Html } from './html.ts'
import { PAGE_CSS } from './style.ts'
import { catalog, connect, layout, overview, subjects, upstreams, type TabPath } from './views.ts'

/** Rows in the overview's top tables and recent pulls. */
const TOP_ROWS = 10
/** Rows per tab table and catalog page. */
const PAGE_ROWS = 100
/** Blob records read at most for the catalog. */
const MAX_CATALOG_SCAN = 100_000
const UNUSED_DAYS = 30

const WINDOWS: Readonly<Record<string, number>> = {
  '1h': 3_600_000,
  '24h': DAY_MS,
  '7d': 7 * DAY_MS,
  '30d': 30 * DAY_MS,
  '90d': 90 * DAY_MS,
}
const SORTS = ['pulls', 'bytes', 'last', 'clients'] as const

/** No script, no frame, nothing from elsewhere; forms only to this server. */
const PAGE_CSP =
  "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

export interface PageDeps extends ApiDeps {
  /** `server.publicUrl`, when set. */
  readonly publicUrl: string | undefined
  readonly registryNames: readonly string[]
  readonly indexNames: readonly { readonly name: string; readonly isDefault: boolean }[]
}

export function registerStatusPage(app: FastifyInstance, deps: PageDeps): void {
  const node = hostname()
  const route = { config: { protocol: 'page' } }
  const send = (reply: FastifyReply, tab: TabPath, title: string, body: Html) =>
    reply
      .header('content-type', 'text/html; charset=utf-8')
      .header('content-security-policy', PAGE_CSP)
      .header('cache-control', 'no-store')
      .send(layout({ current: tab, title, node, offline: deps.offline.on }, body).text)

  void app.register((page, _options, done) => {
    page.addHook('onRequest', adminGuard(deps.token, 'basic', deps.admins))

    page.get('/-/page.css', route, (_request, reply) =>
      reply
        .header('content-type', 'text/css; charset=utf-8')
        .header('cache-control', 'public, max-age=300')
        .send(PAGE_CSS),
    )

    page.get('/-/', route, async (_request, reply) => {
      const now = deps.now()
      const top = {
        rollup: 'subject',
        sort: 'pulls',
        windowMs: DAY_MS,
        limit: TOP_ROWS,
        offset: 0,
      } as const
      const [windows, disk, series, repositories, projects] = await Promise.all([
        deps.statistics.summary(),
        deps.metadata.blobTotals(),
        deps.statistics.series(DAY_MS),
        deps.statistics.subjects({ ...top, protocol: 'docker' }),
        deps.statistics.subjects({ ...top, protocol: 'pypi' }),
      ])
      const body = overview({
        windows,
        disk: { usedBytes: disk.bytes, maxBytes: deps.maxSize, artifacts: disk.count },
        series,
        repositories: repositories.rows,
        projects: projects.rows,
        events: deps.events.recent({ limit: TOP_ROWS }),
        now,
      })
      return send(reply, '/-/', 'Overview', body)
    })

    page.get('/-/repositories', route, async (request, reply) => {
      const query = request.query as Record<string, string | undefined>
      const window = query.window !== undefined && query.window in WINDOWS ? query.window : '24h'
      const rollup = query.rollup === 'namespace' ? 'namespace' : 'subject'
      const sort = SORTS.find((s) => s === query.sort) ?? 'pulls'
      const common = {
        rollup,
        sort,
        windowMs: WINDOWS[window] ?? DAY_MS,
        limit: PAGE_ROWS,
        offset: 0,
      } as const
      const [repositories, projects] = await Promise.all([
        deps.statistics.subjects({ ...common, protocol: 'docker' }),
        deps.statistics.subjects({ ...common, protocol: 'pypi' }),
      ])
      const body = subjects({
        repositories: repositories.rows,
        projects: projects.rows,
        window,
        rollup,
        sort,
      })
      return send(reply, '/-/repositories', 'Repositories & projects', body)
    })

    page.get('/-/catalog', route, async (request, reply) => {
      const query = request.query as Record<string, string | undefined>
      const digest = query.digest?.trim() || undefined
      const offset = Math.max(0, Math.floor(Number(query.offset) || 0))
      const all = await deps.metadata.leastRecentlyUsed(MAX_CATALOG_SCAN)
      const cutoff = deps.now() - UNUSED_DAYS * DAY_MS
      const unused = all.filter((b) => b.lastAccess < cutoff)
      const matching = all
        .filter((b) => digest === undefined || b.digest.startsWith(digest))
        .sort((a, b) => b.lastAccess - a.lastAccess || a.digest.localeCompare(b.digest))
      const body = catalog({
        items: await catalogRows(deps, matching.slice(offset, offset + PAGE_ROWS)),
        total: matching.length,
        offset,
        limit: PAGE_ROWS,
        digest,
        unusedCount: unused.length,
        unusedBytes: unused.reduce((sum, b) => sum + b.size, 0),
      })
      return send(reply, '/-/catalog', 'Catalog', body)
    })

    page.get('/-/upstreams', route, (_request, reply) =>
      send(reply, '/-/upstreams', 'Upstreams', upstreams(upstreamHealth(deps))),
    )

    page.get('/-/connect', route, (request, reply) =>
      send(
        reply,
        '/-/connect',
        'Connect',
        connect({
          base: deps.publicUrl?.replace(/\/+$/, '') ?? requestBase(request),
          registries: deps.registryNames,
          indexes: deps.indexNames,
        }),
      ),
    )
    done()
  })
}

/** The scheme and host the request came in on (behind a trusted proxy: X-Forwarded-*). */
function requestBase(request: FastifyRequest): string {
  return `${request.protocol}://${request.host}`
}
