/**
 * The bundle: one tar file that carries cached content into a site with no
 * network, and is useful without pullthrough:
 *
 *   pullthrough-bundle.json                    first: what it holds (BundleManifest)
 *   oci-layout, index.json, blobs/sha256/<hex> the images, an OCI image layout
 *                                              (`skopeo copy oci-archive:bundle.tar:<name>`)
 *   pypi/<index>/simple/index.html             the files, a PEP 503 tree
 *   pypi/<index>/simple/<project>/index.html   (`pip --index-url file://…/pypi/<index>/simple/`)
 *   pypi/<index>/files/<project>/<filename>
 *   SHA256SUMS                                 last: `sha256sum -c` of everything above
 *
 * The manifest gives the digest and size of every entry, so a reader checks
 * each byte as it streams past and knows a bundle cut short (at any entry
 * boundary) by what has not arrived.
 */
import { z } from 'zod'

export const BUNDLE_MANIFEST = 'pullthrough-bundle.json'
export const SUMS = 'SHA256SUMS'
export const OCI_LAYOUT = 'oci-layout'
export const OCI_INDEX = 'index.json'
export const BUNDLE_FORMAT = 'pullthrough-bundle'
export const BUNDLE_VERSION = 1

/** Largest manifest a reader accepts (about 100 bytes per entry: a million entries). */
export const MAX_MANIFEST_BYTES = 128 * 1024 * 1024
/** Largest generated entry (index.json, a page, SHA256SUMS) a reader accepts. */
export const MAX_TEXT_ENTRY_BYTES = 64 * 1024 * 1024

/** OCI image-layout: the annotation that names an image in index.json. */
export const REF_NAME = 'org.opencontainers.image.ref.name'
export const OCI_INDEX_MEDIA_TYPE = 'application/vnd.oci.image.index.v1+json'

const digest = z.string().regex(/^sha256:[a-f0-9]{64}$/)
const size = z.number().int().nonnegative()
/** Names as the configs and protocols spell them: no control characters, no path tricks. */
const name = z
  .string()
  .min(1)
  .max(1024)
  .refine((s) => !/[\p{Cc}]/u.test(s), 'must not hold control characters')

const imageSchema = z.object({
  registry: name,
  repository: name,
  tag: z.string().regex(/^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/),
  digest,
  mediaType: name,
  size,
  /** When the source's upstream last confirmed the tag (ms since the epoch). */
  fetchedAt: z.number().int().nonnegative(),
})

const fileSchema = z.object({
  filename: name,
  sha256: z.string().regex(/^[a-f0-9]{64}$/),
  size,
  /** Where the source's index had it (kept so a later sync can carry on). */
  url: z.string().max(8192),
  requiresPython: z.string().max(1024).optional(),
  yanked: z.union([z.literal(true), z.string().max(4096)]).optional(),
})

const packageSchema = z.object({
  index: name,
  project: name,
  fetchedAt: z.number().int().nonnegative(),
  files: z.array(fileSchema),
})

const entrySchema = z.object({ path: z.string().min(1).max(4096), digest, size })

export const bundleManifestSchema = z.object({
  format: z.literal(BUNDLE_FORMAT),
  version: z.literal(BUNDLE_VERSION),
  createdAt: z.string(),
  images: z.array(imageSchema),
  packages: z.array(packageSchema),
  /** Every entry between the manifest and SHA256SUMS. */
  entries: z.array(entrySchema),
})

export type BundleManifest = z.infer<typeof bundleManifestSchema>
export type BundleImage = BundleManifest['images'][number]
export type BundlePackage = BundleManifest['packages'][number]
export type BundleFile = BundlePackage['files'][number]
export type BundleEntry = BundleManifest['entries'][number]

/** `docker.io/library/python:3.12`: how index.json and reports name an image. */
export function imageName(image: Pick<BundleImage, 'registry' | 'repository' | 'tag'>): string {
  return `${image.registry}/${image.repository}:${image.tag}`
}

export function blobPath(blobDigest: string): string {
  return `blobs/sha256/${blobDigest.slice('sha256:'.length)}`
}

export function filePath(index: string, project: string, filename: string): string {
  return `pypi/${index}/files/${project}/${filename}`
}

export function projectPagePath(index: string, project: string): string {
  return `pypi/${index}/simple/${project}/index.html`
}

export function rootPagePath(index: string): string {
  return `pypi/${index}/simple/index.html`
}

/** SHA256SUMS, as `sha256sum` writes and checks it. */
export function sums(entries: readonly { path: string; digest: string }[]): string {
  return entries.map((e) => `${e.digest.slice('sha256:'.length)}  ${e.path}\n`).join('')
}
