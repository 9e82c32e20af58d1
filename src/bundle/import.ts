/**
 * Imports a bundle into the cache, all or nothing: every blob and file is
 * written to a staging area and checked against its digest as it streams in
 * (content already stored is hashed, not written again); only when the whole
 * bundle has checked out to its last entry are the blobs committed and the
 * tags and pages recorded. A bundle that is cut short, corrupted, or names a
 * registry or index this pullthrough does not have leaves the store as it was.
 */
import type { Readable } from 'node:stream'
import type { MetadataStore } from '../metadata/store.ts'
import type { BlobStorage } from '../storage/blob-storage.ts'
import { BundleInvalidError, BundleRequestError } from './errors.ts'
import { blobPath, filePath, imageName, type BundleManifest } from './format.ts'
import type { BundleImages, BundleProjects } from './ports.ts'
import { checkContent, isContentEntry, readBundle } from './read.ts'

export interface ImportDeps {
  readonly images: BundleImages
  readonly projects: BundleProjects
  readonly blobs: Pick<BlobStorage, 'createStaging' | 'has'>
  readonly metadata: Pick<MetadataStore, 'putBlob' | 'setPinned'>
  readonly now: () => number
  /** storage.maxBlobSize: a larger entry is refused. */
  readonly maxBlobBytes: number
}

export interface ImportReport {
  /** `docker.io/library/python:3.12`, each tag recorded. */
  readonly images: readonly string[]
  /** `pypi/requests`, each page that gained files. */
  readonly projects: readonly string[]
  readonly files: number
  /** Blobs and files newly stored, and their bytes. */
  readonly added: { readonly count: number; readonly bytes: number }
  /** Blobs and files the store had already (checked, not written). */
  readonly present: { readonly count: number; readonly bytes: number }
  /** Digests pinned (with `pin`). */
  readonly pinned: number
}

export async function importBundle(
  deps: ImportDeps,
  source: Readable,
  options: { readonly pin: boolean },
): Promise<ImportReport> {
  const staging = await deps.blobs.createStaging()
  const added = { count: 0, bytes: 0 }
  const present = { count: 0, bytes: 0 }
  try {
    const manifest = await readBundle(source, {
      manifest: (m) => Promise.resolve(check(deps, m)),
      async content(entry, stream) {
        if (entry.size > deps.maxBlobBytes)
          throw new BundleInvalidError(`${entry.path}: larger than storage.maxBlobSize`)
        if (await deps.blobs.has(entry.digest)) {
          await checkContent(entry, stream)
          present.count++
          present.bytes += entry.size
        } else {
          await staging.write(entry.digest, stream)
          added.count++
          added.bytes += entry.size
        }
      },
    })
    const now = deps.now()
    await staging.commit((digest, size) => deps.metadata.putBlob(digest, size, now))
    for (const image of manifest.images)
      await deps.images.record(image, image.tag, image, image.fetchedAt)
    for (const pkg of manifest.packages) await deps.projects.record(pkg, pkg.files, pkg.fetchedAt)
    let pinned = 0
    if (options.pin)
      for (const entry of manifest.entries)
        if (isContentEntry(entry.path)) {
          await deps.metadata.setPinned(entry.digest, true)
          pinned++
        }
    return {
      images: manifest.images.map(imageName),
      projects: manifest.packages.map((p) => `${p.index}/${p.project}`),
      files: manifest.packages.reduce((n, p) => n + p.files.length, 0),
      added,
      present,
      pinned,
    }
  } finally {
    await staging.discard()
  }
}

/** Refuses, before any content is read, a bundle this pullthrough cannot take or that does not hold what it names. */
function check(deps: ImportDeps, manifest: BundleManifest): void {
  const paths = new Map(manifest.entries.map((e) => [e.path, e.digest]))
  for (const image of manifest.images) {
    if (!deps.images.has(image.registry))
      throw new BundleRequestError(
        `the bundle has images of registry "${image.registry}", which this pullthrough does not configure (docker.registries)`,
      )
    if (paths.get(blobPath(image.digest)) !== image.digest)
      throw new BundleInvalidError(`${imageName(image)}: its manifest is not in the bundle`)
  }
  for (const pkg of manifest.packages) {
    if (!deps.projects.has(pkg.index))
      throw new BundleRequestError(
        `the bundle has packages of index "${pkg.index}", which this pullthrough does not configure (pypi.indexes)`,
      )
    for (const file of pkg.files)
      if (paths.get(filePath(pkg.index, pkg.project, file.filename)) !== `sha256:${file.sha256}`)
        throw new BundleInvalidError(`${pkg.project}/${file.filename}: not in the bundle`)
  }
}
