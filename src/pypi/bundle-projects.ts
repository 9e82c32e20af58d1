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
import { bodyStream } from '../cache/served-body.ts'

export function pypiBundleProjects(deps: PypiRoutesDeps): BundleProjects {
  const sync = pypiSyncProjects(deps)
  const target = (name: string): IndexTarget => {
    const where = indexTarget(deps, name)
    if (!where) throw new SyncPlanError(`no index is named ${name}`)
    return where
  }
  /** Where the file comes from (undefined: a host the index does not fetch from) and its digest. */
  const located = (index: string, file: BundleSourceFile) => {
    if (file.sha256 === undefined)
      throw new SyncPlanError(`${file.filename}: no sha256 to verify it`)
    return { location: target(index).files.locate(file.url), digest: `sha256:${file.sha256}` }
  }
  const notAllowed = (file: BundleSourceFile) =>
    new SyncPlanError(`${file.filename}: not stored, and not on a host the index allows`)
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
      const { location, digest } = located(ref.index, file)
      const stored = await deps.cache.storedSize(digest)
      if (stored !== undefined) return stored
      if (!location) throw notAllowed(file)
      const head = await deps.cache.stat(digest, location)
      if (head.size !== undefined) return head.size
      // The host gives no length: fetch it now, then it is in the store.
      return drain(bodyStream((await deps.cache.serve(digest, location)).body), () =>
        Promise.resolve(),
      )
    },
    async open(ref, file) {
      const { location, digest } = located(ref.index, file)
      // A file imported from a bundle may name a host this index does not fetch from.
      const served = location
        ? await deps.cache.serve(digest, location)
        : await deps.cache.serveStored(digest)
      if (!served) throw notAllowed(file)
      return bodyStream(served.body)
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
