/**
 * Projects for sync lists (sync/ports.ts's ProjectSync): pages revalidated
 * through the index page cache, files through the read-through cache and
 * checked against the page's sha256, exactly as `pip download` through
 * pullthrough would fill them.
 */
import { SyncPlanError } from '../sync/errors.ts'
import { drain } from '../sync/drain.ts'
import type { ProjectRef, ProjectSync } from '../sync/ports.ts'
import { isProjectName, normalizeProjectName, parseDistFilename } from './names.ts'
import { projectPages } from './pages.ts'
import { indexTarget, type IndexTarget, type PypiRoutesDeps } from './target.ts'
import { bodyStream, discardBody } from '../cache/served-body.ts'

export function pypiSyncProjects(deps: PypiRoutesDeps): ProjectSync {
  const target = (name: string | undefined): IndexTarget => {
    const where = indexTarget(deps, name)
    if (!where) throw new SyncPlanError(`no index is named ${name ?? '(default)'}`)
    return where
  }
  return {
    resolve(index, project) {
      const name = index ?? deps.indexes.find((i) => i.default)?.name
      if (!isProjectName(project)) throw new SyncPlanError(`"${project}" is not a project name`)
      return { index: target(name).index.name, project: normalizeProjectName(project) }
    },
    async files(ref: ProjectRef) {
      const { page, cache } = await projectPages(deps, target(ref.index)).revalidate(ref.project)
      const files = page.files.map((f) => ({
        filename: f.filename,
        url: f.url,
        version: parseDistFilename(f.filename, ref.project)?.version,
        sha256: f.hashes.sha256,
        yanked: f.yanked !== undefined,
      }))
      return { files, cache }
    },
    async file(ref, file, paced) {
      const where = target(ref.index)
      const location = where.files.locate(file.url)
      if (!location || file.sha256 === undefined)
        throw new SyncPlanError(`${file.filename}: not on a host the index allows`)
      const served = await deps.cache.serve(`sha256:${file.sha256}`, location)
      if (served.cache === 'hit') {
        discardBody(served.body)
        return { bytes: 0 }
      }
      return { bytes: await drain(bodyStream(served.body), paced) }
    },
  }
}
