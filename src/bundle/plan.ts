/**
 * What an export puts in its bundle: images by reference (a tag's manifest,
 * its platforms' manifests, their blobs), packages by requirement line (the
 * newest version each allows, its files), sync lists (their selection, as a
 * run would make it), or everything the cache holds (`all`: the cached tags,
 * and the files of the projects pulls went through, only what is stored).
 *
 * Planning asks the upstreams only for small things (one HEAD per tag, one
 * conditional request per page, a HEAD for a file whose page gives no size);
 * blobs and files not yet cached are fetched, verified, while the bundle is
 * written. When every upstream fails the cached answer is used, marked with
 * fetchedAt 0 so an importer revalidates it at the first chance.
 */
import { Readable } from 'node:stream'
import picomatch from 'picomatch'
import * as pep440 from '@renovatebot/pep440'
import type { SyncImageConfig, SyncListConfig, SyncPackageConfig } from '../config/schema.ts'
import { tagOfRecordName } from '../cache/manifests.ts'
import type { MetadataStore, TagRecord } from '../metadata/store.ts'
import type { BlobStorage } from '../storage/blob-storage.ts'
import { requirements } from '../sync/list-run.ts'
import { blobDescriptors, childManifests } from '../sync/manifest-refs.ts'
import type { SyncManifest } from '../sync/ports.ts'
import { literalTags, parseRequirementLine, selectTags, selectVersions } from '../sync/select.ts'
import { BundleRequestError } from './errors.ts'
import {
  blobPath,
  filePath,
  type BundleFile,
  type BundleImage,
  type BundlePackage,
} from './format.ts'
import type {
  BundleImages,
  BundleProjects,
  BundleSourceFile,
  ImageRef,
  ProjectRef,
} from './ports.ts'
import type { BundlePlan, ContentEntry } from './write.ts'

/** Largest manifest read from the store for an export (as manifests.ts accepts from upstreams). */
const MAX_MANIFEST_BYTES = 4 * 1024 * 1024
/** Blob records whose references are read per batch when exporting everything. */
const REFERENCE_BATCH = 500

export interface ExportRequest {
  /** `library/python:3.12`, `ghcr.io/org/app:1.0` (routed like pulls). */
  readonly images: readonly string[]
  /** `os/arch[/variant]` of multi-arch images; default all. */
  readonly platforms?: readonly string[] | undefined
  /** Requirement lines: `requests==2.32.3`, `flask>=3`, `numpy`. */
  readonly packages: readonly string[]
  /** The index the packages come from; the default one when undefined. */
  readonly index?: string | undefined
  /** Filename globs of the package files wanted; default all of the chosen version. */
  readonly files?: readonly string[] | undefined
  /** Sync lists whose selection goes in. */
  readonly syncLists: readonly SyncListConfig[]
  /** Everything the cache holds. */
  readonly all: boolean
}

export interface PlanDeps {
  readonly images: BundleImages
  readonly projects: BundleProjects
  readonly metadata: Pick<
    MetadataStore,
    'listRepositories' | 'listTags' | 'blobTotals' | 'leastRecentlyUsed' | 'references'
  >
  readonly blobs: Pick<BlobStorage, 'readSmall' | 'stat' | 'createReadStream'>
  /** The configured registry names (for `all`). */
  readonly registries: readonly string[]
  readonly now: () => number
}

export interface ExportPlan extends BundlePlan {
  /** What was left out and why (a blob not stored when exporting everything). */
  readonly warnings: readonly string[]
}

export async function planExport(deps: PlanDeps, request: ExportRequest): Promise<ExportPlan> {
  const plan = new Planner(deps)
  for (const reference of request.images) {
    const { repository, tag } = splitReference(reference)
    await plan.image(
      resolve(() => deps.images.resolve(undefined, repository)),
      tag,
      request.platforms,
    )
  }
  for (const line of request.packages) {
    const parsed = resolve(() => parseRequirementLine(line))
    if (!parsed) continue
    const pkg = {
      project: parsed.project,
      latest: 1,
      ...(parsed.versions ? { versions: parsed.versions } : {}),
      ...(request.files ? { files: [...request.files] } : {}),
    }
    await plan.project(
      resolve(() => deps.projects.resolve(request.index, parsed.project)),
      pkg,
    )
  }
  for (const list of request.syncLists) await plan.list(list)
  if (request.all) await plan.everything()
  return plan.result()
}

class Planner {
  readonly #images = new Map<string, BundleImage>()
  readonly #packages = new Map<string, BundlePackage>()
  readonly #content = new Map<string, ContentEntry>()
  readonly #warnings: string[] = []

  constructor(private readonly deps: PlanDeps) {}

  result(): ExportPlan {
    if (this.#images.size === 0 && this.#packages.size === 0)
      throw new BundleRequestError('nothing to export: name images, packages, sync lists or all')
    // Manifests before blobs: a reader meets what refers before what is referred to.
    const content = [...this.#content.values()]
    return {
      images: [...this.#images.values()],
      packages: [...this.#packages.values()],
      content,
      warnings: this.#warnings,
    }
  }

  async list(list: SyncListConfig): Promise<void> {
    for (const image of list.images) {
      const ref = resolve(() => this.deps.images.resolve(image.registry, image.repository))
      for (const tag of await this.#tagsOf(ref, image)) await this.image(ref, tag, image.platforms)
    }
    const packages: SyncPackageConfig[] = [...list.packages]
    for (const file of list.requirements)
      packages.push(...(await resolveAsync(() => requirements(file))))
    for (const pkg of packages)
      await this.project(
        resolve(() => this.deps.projects.resolve(pkg.index, pkg.project)),
        pkg,
      )
  }

  async #tagsOf(ref: ImageRef, image: SyncImageConfig): Promise<readonly string[]> {
    return literalTags(image) ?? selectTags(image, await this.deps.images.tags(ref))
  }

  /** An image by tag, fetched where the cache lacks it. */
  async image(ref: ImageRef, tag: string, platforms: readonly string[] | undefined): Promise<void> {
    const top = await this.deps.images.tag(ref, tag)
    const fetchedAt = top.stale ? 0 : this.deps.now()
    await this.#addImage(ref, tag, top, fetchedAt, platforms, {
      manifest: (digest) => this.deps.images.manifest(ref, digest),
      blob: (digest) => () => this.deps.images.open(ref, digest),
    })
  }

  async #addImage(
    ref: ImageRef,
    tag: string,
    top: SyncManifest,
    fetchedAt: number,
    platforms: readonly string[] | undefined,
    read: {
      manifest: (digest: string) => Promise<SyncManifest | undefined>
      /** How to open the blob; undefined when it cannot be had. */
      blob: (
        digest: string,
      ) => (() => Promise<Readable>) | undefined | Promise<(() => Promise<Readable>) | undefined>
    },
  ): Promise<void> {
    const name = `${ref.registry}/${ref.repository}:${tag}`
    this.#images.set(name, {
      registry: ref.registry,
      repository: ref.repository,
      tag,
      digest: top.digest,
      mediaType: top.mediaType,
      size: top.body.length,
      fetchedAt,
    })
    this.#addBody(top)
    const children = childManifests(top, platforms)
    const images: SyncManifest[] = children.length === 0 ? [top] : []
    for (const digest of children) {
      const child = await read.manifest(digest)
      if (!child) {
        this.#warnings.push(`${name}: manifest ${digest} is not stored`)
        continue
      }
      this.#addBody(child)
      images.push(child)
    }
    for (const image of images)
      for (const blob of blobDescriptors(image)) {
        const path = blobPath(blob.digest)
        if (this.#content.has(path)) continue
        const open = await read.blob(blob.digest)
        if (!open) {
          this.#warnings.push(`${name}: blob ${blob.digest} is not stored`)
          continue
        }
        this.#content.set(path, { path, digest: blob.digest, size: blob.size, open })
      }
  }

  #addBody(manifest: SyncManifest): void {
    const path = blobPath(manifest.digest)
    const { body } = manifest
    this.#content.set(path, {
      path,
      digest: manifest.digest,
      size: body.length,
      open: () => Promise.resolve(Readable.from([body])),
    })
  }

  /** A package's chosen versions and their files, fetched where the cache lacks them. */
  async project(
    ref: ProjectRef,
    pkg: Pick<SyncPackageConfig, 'versions' | 'latest' | 'files'>,
  ): Promise<void> {
    const page = await this.deps.projects.files(ref)
    const wanted = pkg.files ? picomatch(pkg.files as string[], { dot: true }) : () => true
    const files = page.files.filter((f) => f.sha256 !== undefined && wanted(f.filename))
    const listed = files.flatMap((f) =>
      f.version === undefined ? [] : [{ version: f.version, yanked: f.yanked }],
    )
    const versions = selectVersions(pkg, listed)
    if (versions.length === 0)
      throw new BundleRequestError(
        `${ref.project}: the index lists no version${pkg.versions ? ` matching ${pkg.versions}` : ''} with files that can be verified`,
      )
    const chosen = files.filter(
      (f) =>
        f.version !== undefined &&
        pep440.valid(f.version) &&
        versions.some((v) => pep440.eq(f.version ?? '', v)),
    )
    const fetchedAt = page.stale ? 0 : this.deps.now()
    for (const file of chosen) {
      const size = await this.deps.projects.size(ref, file)
      this.#addFile(ref, file, size, fetchedAt, () => this.deps.projects.open(ref, file))
    }
  }

  #addFile(
    ref: ProjectRef,
    file: BundleSourceFile,
    size: number,
    fetchedAt: number,
    open: () => Promise<Readable>,
  ): void {
    const sha256 = file.sha256 ?? ''
    const key = `${ref.index}/${ref.project}`
    const pkg = this.#packages.get(key) ?? {
      index: ref.index,
      project: ref.project,
      fetchedAt,
      files: [],
    }
    if (pkg.files.some((f) => f.filename === file.filename)) return
    const kept: BundleFile = {
      filename: file.filename,
      sha256,
      size,
      url: file.url,
      ...(file.requiresPython === undefined ? {} : { requiresPython: file.requiresPython }),
      ...(file.yankedReason === undefined ? {} : { yanked: file.yankedReason }),
    }
    this.#packages.set(key, {
      ...pkg,
      fetchedAt: Math.min(pkg.fetchedAt, fetchedAt),
      files: [...pkg.files, kept],
    })
    const path = filePath(ref.index, ref.project, file.filename)
    this.#content.set(path, { path, digest: `sha256:${sha256}`, size, open })
  }

  /** Everything stored: the cached tags and the stored files of the projects pulled. No upstream is asked. */
  async everything(): Promise<void> {
    const { metadata } = this.deps
    for (const registry of this.deps.registries)
      for (const repository of await metadata.listRepositories(registry))
        for (const [tag, record] of cachedTags(await metadata.listTags(registry, repository))) {
          const top = await this.#stored(record.digest)
          if (!top) {
            this.#warnings.push(`${registry}/${repository}:${tag}: its manifest is not stored`)
            continue
          }
          await this.#addImage({ registry, repository }, tag, top, record.fetchedAt, undefined, {
            manifest: (digest) => this.#stored(digest),
            blob: async (digest) =>
              (await this.deps.blobs.stat(digest)) ? this.#openStored(digest) : undefined,
          })
        }
    for (const ref of await this.#pulledProjects()) {
      const files = await this.deps.projects.cached(ref)
      for (const file of files ?? []) {
        if (file.sha256 === undefined) continue
        const digest = `sha256:${file.sha256}`
        const stat = await this.deps.blobs.stat(digest)
        if (stat) this.#addFile(ref, file, stat.size, 0, this.#openStored(digest))
      }
    }
  }

  /** Projects that pulls went through (recorded with the pull statistics), by index. */
  async #pulledProjects(): Promise<ProjectRef[]> {
    const { metadata } = this.deps
    const { count } = await metadata.blobTotals()
    const records = await metadata.leastRecentlyUsed(count)
    const projects = new Map<string, ProjectRef>()
    for (let i = 0; i < records.length; i += REFERENCE_BATCH) {
      const digests = records.slice(i, i + REFERENCE_BATCH).map((r) => r.digest)
      for (const refs of (await metadata.references(digests)).values())
        for (const r of refs)
          if (r.protocol === 'pypi' && this.deps.projects.has(r.pool))
            projects.set(`${r.pool}/${r.subject}`, { index: r.pool, project: r.subject })
    }
    return [...projects.values()]
  }

  async #stored(digest: string): Promise<SyncManifest | undefined> {
    try {
      const body = await this.deps.blobs.readSmall(digest, MAX_MANIFEST_BYTES)
      const mediaType = (JSON.parse(body.toString('utf8')) as { mediaType?: unknown }).mediaType
      return { digest, body, mediaType: typeof mediaType === 'string' ? mediaType : '' }
    } catch {
      return undefined
    }
  }

  #openStored(digest: string): () => Promise<Readable> {
    return () => this.deps.blobs.createReadStream(digest, { verify: true })
  }
}

/**
 * Each cached tag's record: the canonical one, else (a tag only narrower
 * clients asked for) the newest of its narrower views.
 */
function cachedTags(records: ReadonlyMap<string, TagRecord>): Map<string, TagRecord> {
  const tags = new Map<string, TagRecord>()
  for (const [name, record] of records) {
    const tag = tagOfRecordName(name)
    const held = tags.get(tag)
    if (name === tag || !held || (!records.has(tag) && held.fetchedAt < record.fetchedAt))
      tags.set(tag, record)
  }
  return tags
}

/** `repo:tag` (the tag after the last colon past the last slash); a tag is required. */
function splitReference(reference: string): { repository: string; tag: string } {
  const slash = reference.lastIndexOf('/')
  const colon = reference.lastIndexOf(':')
  if (reference.includes('@') || colon <= slash)
    throw new BundleRequestError(
      `"${reference}": name an image by repository and tag, like library/python:3.12`,
    )
  return { repository: reference.slice(0, colon), tag: reference.slice(colon + 1) }
}

/** Runs a port call whose failures are the request's fault as BundleRequestError. */
function resolve<T>(call: () => T): T {
  try {
    return call()
  } catch (error) {
    throw asRequestError(error)
  }
}

async function resolveAsync<T>(call: () => Promise<T>): Promise<T> {
  try {
    return await call()
  } catch (error) {
    throw asRequestError(error)
  }
}

function asRequestError(error: unknown): unknown {
  return error instanceof Error && 'code' in error && error.code === 'PT_SYNC_PLAN'
    ? new BundleRequestError(error.message, { cause: error })
    : error
}
