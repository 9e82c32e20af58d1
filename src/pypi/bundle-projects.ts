/**
 * Projects for bundles (bundle/ports.ts's BundleProjects): pages revalidated
 * and files fetched as sync lists do (sync-projects.ts), files opened through
 * the read-through cache, imported files added to the cached page.
 */
import type { BundleFile } from '../bundle/format.ts'
import type { BundleProjects, BundleSourceFile } from '../bundle/ports.ts'
import { drain } from '../sync/drain.ts'
import { SyncPlanError } from '../sync/errors.ts'
import { isProjectPage, type ProjectFile, type ProjectPage } from './model.ts'
import { parseDistFilename } from './names.ts'
import { projectPages } from './pages.ts'
import { pypiSyncProjects } from './sync-projects.ts'
import { indexTarget, type IndexTarget, type PypiRoutesDeps } from './target.ts'

export function pypiBundleProjects(deps: PypiRoutesDeps): BundleProjects {
  const sync = pypiSyncProjects(deps)
  const target = (name: string): IndexTarget => {
    const where = indexTarget(deps, name)
    if (!where) throw new SyncPlanError(`no index is named ${name}`)
    return where
  }
  const located = (index: string, file: BundleSourceFile) => {
    const location = target(index).files.locate(file.url)
    if (!location || file.sha256 === undefined)
      throw new SyncPlanError(`${file.filename}: not on a host the index allows`)
    return { location, digest: `sha256:${file.sha256}` }
  }
  const sourceFiles = (page: ProjectPage, project: string): BundleSourceFile[] =>
    page.files.map((f) => ({
      filename: f.filename,
      url: f.url,
      version: parseDistFilename(f.filename, project)?.version,
      sha256: f.hashes.sha256,
      yanked: f.yanked !== undefined,
      yankedReason: f.yanked,
      size: f.size,
      requiresPython: f.requiresPython,
    }))
  return {
    has: (index) => deps.indexes.some((i) => i.name === index),
    resolve: (index, project) => sync.resolve(index, project),
    async files(ref) {
      const { page, cache } = await projectPages(deps, target(ref.index)).revalidate(ref.project)
      return { files: sourceFiles(page, ref.project), stale: cache === 'stale' }
    },
    async cached(ref) {
      const page = await deps.pages.peek(ref.index, ref.project)
      return isProjectPage(page) ? sourceFiles(page, ref.project) : undefined
    },
    async size(ref, file) {
      if (file.size !== undefined) return file.size
      const stored = file.sha256 && (await deps.cache.serveStored(`sha256:${file.sha256}`))
      if (stored) {
        stored.stream.destroy()
        if (stored.size !== undefined) return stored.size
      }
      const { location, digest } = located(ref.index, file)
      const head = await deps.cache.stat(digest, location)
      if (head.size !== undefined) return head.size
      // The host gives no length: fetch it now, then it is in the store.
      return drain((await deps.cache.serve(digest, location)).stream, () => Promise.resolve())
    },
    async open(ref, file) {
      const stored = file.sha256 && (await deps.cache.serveStored(`sha256:${file.sha256}`))
      if (stored) return stored.stream
      const { location, digest } = located(ref.index, file)
      return (await deps.cache.serve(digest, location)).stream
    },
    record: (ref, files, fetchedAt) =>
      deps.pages.merge(
        ref.index,
        ref.project,
        (kept) => withFiles(kept, ref.project, files),
        fetchedAt,
      ),
  }
}

/** The kept page (a new one when there is none) with the files it does not list yet. */
function withFiles(kept: unknown, project: string, files: readonly BundleFile[]): ProjectPage {
  const page: ProjectPage = isProjectPage(kept) ? kept : { name: project, files: [] }
  const listed = new Set(page.files.map((f) => f.filename))
  const added: ProjectFile[] = files
    .filter((f) => !listed.has(f.filename))
    .map((f) => ({
      filename: f.filename,
      url: f.url,
      hashes: { sha256: f.sha256 },
      size: f.size,
      ...(f.requiresPython === undefined ? {} : { requiresPython: f.requiresPython }),
      ...(f.yanked === undefined ? {} : { yanked: f.yanked }),
    }))
  return { ...page, files: [...page.files, ...added] }
}
