/**
 * A project's page of one index: from the cache (fresh, revalidated, stale) or
 * its upstreams, parsed into the neutral model with the host allowlist applied;
 * and, when a listed file cannot be had, the page as the index's other mirrors
 * have it, to find another copy of the same file.
 */
import type { CachedPage, IndexPageSource, UpstreamPage } from '../cache/index-pages.ts'
import type { ProjectPage } from './model.ts'
import type { IndexTarget, PypiRoutesDeps } from './target.ts'
import { parseUpstreamPage } from './upstream-page.ts'

/** How long "no such project" is remembered (a typo retried should not hit upstreams each time). */
export const NEGATIVE_TTL_MS = 60_000

export interface ProjectPages {
  load(project: string): Promise<CachedPage<ProjectPage>>
  /** The page when it is a fresh hit in memory, without a promise; else undefined (then `load`). */
  held(project: string): CachedPage<ProjectPage> | undefined
  /** The page asked of the upstream now, whatever its age: one conditional request when unchanged. */
  revalidate(project: string): Promise<CachedPage<ProjectPage>>
  /** The project's page on every mirror but `except` (uncached), with the mirror's name. */
  elsewhere(
    project: string,
    except: string | undefined,
  ): Promise<{ page: ProjectPage; upstream: string }[]>
}

export function projectPages(deps: PypiRoutesDeps, where: IndexTarget): ProjectPages {
  const source = (project: string): IndexPageSource => ({
    remote: where.remote,
    index: where.index.name,
    project,
    ttlMs: where.index.indexTTL,
    negativeTtlMs: NEGATIVE_TTL_MS,
    keepOnNotFound: where.index.onUpstreamNotFound === 'keep',
  })
  const parse = (project: string) => (upstream: UpstreamPage) =>
    parseUpstreamPage(
      {
        body: upstream.body,
        contentType: upstream.contentType,
        url: upstream.url,
      },
      {
        index: where.index.name,
        project,
        allows: (url) => where.files.allows(url),
        logger: deps.logger,
        onDropped: (reason, count) => {
          deps.metrics.indexLinksDropped.inc({ pool: where.index.name, reason }, count)
        },
      },
    )
  return {
    load: (project) => deps.pages.get(source(project), parse(project)),
    held: (project) => deps.pages.held(source(project)),
    revalidate: (project) => deps.pages.get({ ...source(project), ttlMs: 0 }, parse(project)),
    elsewhere: (project, except) =>
      deps.pages.fromOtherMirrors(source(project), except, parse(project)),
  }
}
