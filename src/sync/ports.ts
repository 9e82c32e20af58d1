/**
 * What a sync list run needs from the protocols, kept to two small ports so
 * sync/ knows no registry or index API: docker/sync-images.ts and
 * pypi/sync-projects.ts implement them over the cache's own read paths, so a
 * sync fetches, verifies and records exactly as a pull does.
 */

/** A cache answer as a pull event names it; `stale` means every upstream failed. */
export type SyncCacheResult = 'hit' | 'miss' | 'revalidated' | 'stale'

/** A fetch that may have moved bytes from an upstream into the store. */
export interface Fetched {
  /** Bytes fetched from an upstream; 0 when the store had it. */
  readonly bytes: number
}

export interface SyncManifest {
  readonly digest: string
  readonly mediaType: string
  readonly body: Buffer
}

export interface ImageRef {
  readonly registry: string
  /** The repository as the upstream knows it (`library/python`). */
  readonly repository: string
}

export interface ImageSync {
  /** Routes a configured repository like a pull would (`python` on Docker Hub is `library/python`). */
  resolve(registry: string | undefined, repository: string): ImageRef
  /** Every tag the upstream lists for the repository. */
  tags(image: ImageRef): Promise<string[]>
  /**
   * Asks the upstream for the tag now, whatever its TTL: a conditional request
   * when it is cached (unchanged: `revalidated`), a fetch when it moved or is new.
   */
  revalidateTag(
    image: ImageRef,
    tag: string,
  ): Promise<
    SyncManifest & { readonly previous: string | undefined; readonly cache: SyncCacheResult }
  >
  /** A manifest by digest: from the store, else fetched and verified. */
  manifest(image: ImageRef, digest: string): Promise<SyncManifest>
  /** Makes sure the blob is stored (fetched and verified when it is not). */
  blob(image: ImageRef, digest: string, paced: Pacer): Promise<Fetched>
}

/** One distribution file of a project page. */
export interface SyncFile {
  readonly filename: string
  /** Where the index says the file is (the protocol's business). */
  readonly url: string
  /** From the filename; undefined when it cannot be parsed. */
  readonly version: string | undefined
  /** Hex SHA-256 from the page; files without one cannot be verified and are not synced. */
  readonly sha256: string | undefined
  readonly yanked: boolean
}

export interface ProjectRef {
  readonly index: string
  /** The normalized name (PEP 503). */
  readonly project: string
}

export interface ProjectSync {
  /** The configured index a package names (the default one when undefined) and its normalized name. */
  resolve(index: string | undefined, project: string): ProjectRef
  /** The project page, revalidated now (one conditional request when unchanged). */
  files(
    project: ProjectRef,
  ): Promise<{ readonly files: readonly SyncFile[]; readonly cache: SyncCacheResult }>
  /** Makes sure the file is stored (fetched and verified against its sha256 when it is not). */
  file(project: ProjectRef, file: SyncFile, paced: Pacer): Promise<Fetched>
}

/** Waits as long as the list's rate asks after `bytes` were fetched. */
export type Pacer = (bytes: number) => Promise<void>
