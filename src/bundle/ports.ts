/**
 * What exporting and importing bundles need from the protocols, kept to two
 * ports (as sync/ports.ts does for sync lists): docker/bundle-images.ts and
 * pypi/bundle-projects.ts implement them over the cache's read paths, so an
 * export fetches and verifies what is missing exactly as a pull would, and an
 * import records tags and pages as the protocols keep them.
 */
import type { Readable } from 'node:stream'
import type { ImageRef, ProjectRef, SyncFile, SyncManifest } from '../sync/ports.ts'
import type { BundleFile } from './format.ts'

export type { ImageRef, ProjectRef }

export interface BundleImages {
  /** True when this pullthrough has a registry of that name. */
  has(registry: string): boolean
  resolve(registry: string | undefined, repository: string): ImageRef
  /** Every tag the upstream lists (to select a sync list's tags). */
  tags(image: ImageRef): Promise<string[]>
  /**
   * The tag's manifest, asked of the upstream now (one HEAD when unchanged);
   * `stale` when every upstream failed and the cached one is given.
   */
  tag(image: ImageRef, tag: string): Promise<SyncManifest & { readonly stale: boolean }>
  /** A manifest by digest: from the store, else fetched and verified. */
  manifest(image: ImageRef, digest: string): Promise<SyncManifest>
  /** The blob's bytes: from the store, else fetched (and verified) as they are read. */
  open(image: ImageRef, digest: string): Promise<Readable>
  /** Points a tag at a stored manifest (import). */
  record(
    image: ImageRef,
    tag: string,
    manifest: { readonly digest: string; readonly mediaType: string; readonly size: number },
    fetchedAt: number,
  ): Promise<void>
}

/** A file of a project page, with what a bundle keeps of it. */
export interface BundleSourceFile extends SyncFile {
  /** PEP 700 size, when the page gives it. */
  readonly size: number | undefined
  readonly requiresPython: string | undefined
  /** The yank reason (`true`: yanked without one). */
  readonly yankedReason: string | true | undefined
}

export interface BundleProjects {
  /** True when this pullthrough has an index of that name. */
  has(index: string): boolean
  resolve(index: string | undefined, project: string): ProjectRef
  /** The project page, asked of the upstream now; `stale` when every upstream failed. */
  files(
    project: ProjectRef,
  ): Promise<{ readonly files: readonly BundleSourceFile[]; readonly stale: boolean }>
  /** The page as cached, without asking any upstream; undefined when none is. */
  cached(project: ProjectRef): Promise<readonly BundleSourceFile[] | undefined>
  /** The file's size: from the store, else as its host says (a HEAD), else by fetching it. */
  size(project: ProjectRef, file: BundleSourceFile): Promise<number>
  /** The file's bytes: from the store, else fetched (and verified) as they are read. */
  open(project: ProjectRef, file: BundleSourceFile): Promise<Readable>
  /** Adds `files` to the project's cached page (import); files it lists already stay as they are. */
  record(project: ProjectRef, files: readonly BundleFile[], fetchedAt: number): Promise<void>
}
