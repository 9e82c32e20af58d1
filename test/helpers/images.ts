/**
 * Container images for tests, built without a Docker daemon as OCI image
 * layouts (OCI image-layout spec) and moved with the real `skopeo`.
 *
 * Each layer is a real gzip-compressed tar holding one file of random bytes, so
 * dockerd and containerd can unpack it and every digest is new in every run.
 * skopeo runs with a private policy, registries.conf, auth file and temp dir per
 * test, so the machine's /etc/containers and ~/.docker cannot change what it does.
 */
import { createHash, randomBytes, type Hash } from 'node:crypto'
import { createWriteStream } from 'node:fs'
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { pipeline } from 'node:stream/promises'
import { createGzip } from 'node:zlib'
import type { Test } from 'tap'
import { registryFlags, skopeo } from './skopeo.ts'

export { skopeo }

export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json'
export const OCI_INDEX = 'application/vnd.oci.image.index.v1+json'
export const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json'
export const DOCKER_MANIFEST_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json'
const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json'
const OCI_LAYER_GZIP = 'application/vnd.oci.image.layer.v1.tar+gzip'
/** OCI image-layout: the annotation that names a tag in index.json. */
const REF_NAME = 'org.opencontainers.image.ref.name'

/** Random bytes are generated and written in pieces of this size. */
const CHUNK_BYTES = 1024 * 1024
/** tar: 512-byte blocks; an archive ends with two zero blocks. */
const TAR_BLOCK = 512
/** gzip level 1: the content is random, a higher level only costs time. */
const GZIP_LEVEL = 1

export interface Platform {
  readonly os: string
  readonly architecture: string
  readonly variant?: string
}

export interface ImageSpec {
  /** Size in bytes of the random file in each layer, bottom layer first. */
  readonly layers: readonly number[]
  /** One platform: a single manifest. Several: an OCI image index. Default: this host's. */
  readonly platforms?: readonly Platform[]
  /** The tag in the layout's index.json; default `latest`. */
  readonly tag?: string
}

export interface BuiltLayer {
  /** sha256 of the gzip blob. */
  readonly digest: string
  /** sha256 of the uncompressed tar, as in the config's rootfs.diff_ids. */
  readonly diffId: string
  readonly size: number
}

export interface BuiltManifest {
  readonly platform: Platform
  readonly digest: string
  readonly size: number
  readonly config: string
  readonly layers: readonly BuiltLayer[]
}

/** Where skopeo finds an image: an OCI layout directory and a tag in it. */
export interface ImageSource {
  readonly dir: string
  readonly tag: string
}

export interface BuiltImage extends ImageSource {
  /** What the tag points at: the manifest, or the index for several platforms. */
  readonly digest: string
  readonly mediaType: string
  readonly manifests: readonly BuiltManifest[]
}

interface Descriptor {
  readonly mediaType: string
  readonly digest: string
  readonly size: number
}

/** The machine's platform in Go's naming, so dockerd and containerd here can run the image. */
export function hostPlatform(): Platform {
  const goArch: Partial<Record<string, string>> = { x64: 'amd64', ia32: '386', ppc64: 'ppc64le' }
  return { os: 'linux', architecture: goArch[process.arch] ?? process.arch }
}

/** Builds an image as an OCI layout in `dir` (created if missing). */
export async function buildImage(dir: string, spec: ImageSpec): Promise<BuiltImage> {
  const blobs = join(dir, 'blobs', 'sha256')
  await mkdir(blobs, { recursive: true })
  const tag = spec.tag ?? 'latest'
  const platforms = spec.platforms ?? [hostPlatform()]
  const manifests: BuiltManifest[] = []
  for (const platform of platforms)
    manifests.push(await buildManifest(blobs, spec.layers, platform))
  let top: Descriptor
  if (manifests.length === 1) {
    const only = manifests[0]!
    top = { mediaType: OCI_MANIFEST, digest: only.digest, size: only.size }
  } else {
    top = await writeJsonBlob(blobs, OCI_INDEX, {
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      manifests: manifests.map((m) => ({
        mediaType: OCI_MANIFEST,
        digest: m.digest,
        size: m.size,
        platform: m.platform,
      })),
    })
  }
  await writeFile(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }))
  await writeFile(
    join(dir, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      manifests: [{ ...top, annotations: { [REF_NAME]: tag } }],
    }),
  )
  return { dir, tag, digest: top.digest, mediaType: top.mediaType, manifests }
}

async function buildManifest(
  blobs: string,
  sizes: readonly number[],
  platform: Platform,
): Promise<BuiltManifest> {
  const layers: BuiltLayer[] = []
  for (const [i, size] of sizes.entries()) {
    layers.push(await writeLayer(blobs, `pullthrough-fixture-${i}.bin`, size))
  }
  const created = new Date().toISOString()
  // The fields dockerd needs to load an image (OCI image-spec config.md).
  const config = await writeJsonBlob(blobs, OCI_CONFIG, {
    created,
    ...platform,
    config: {},
    rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
    history: layers.map(() => ({ created, created_by: 'pullthrough test fixture' })),
  })
  const manifest = await writeJsonBlob(blobs, OCI_MANIFEST, {
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    config,
    layers: layers.map((l) => ({ mediaType: OCI_LAYER_GZIP, digest: l.digest, size: l.size })),
  })
  return { platform, digest: manifest.digest, size: manifest.size, config: config.digest, layers }
}

async function writeJsonBlob(blobs: string, mediaType: string, value: object): Promise<Descriptor> {
  const bytes = Buffer.from(JSON.stringify(value))
  const digest = sha256(bytes)
  await writeFile(join(blobs, digest.slice('sha256:'.length)), bytes)
  return { mediaType, digest, size: bytes.length }
}

/** Streams tar -> gzip -> file, hashing before and after compression; nothing held in memory. */
async function writeLayer(blobs: string, name: string, size: number): Promise<BuiltLayer> {
  const tarHash = createHash('sha256')
  const gzHash = createHash('sha256')
  let gzBytes = 0
  const partial = join(blobs, `.partial-${randomBytes(8).toString('hex')}`)
  await pipeline(
    tarWithOneFile(name, size),
    tap(tarHash),
    createGzip({ level: GZIP_LEVEL }),
    tap(gzHash, (n) => (gzBytes += n)),
    createWriteStream(partial),
  )
  const hex = gzHash.digest('hex')
  await rename(partial, join(blobs, hex))
  return { digest: `sha256:${hex}`, diffId: `sha256:${tarHash.digest('hex')}`, size: gzBytes }
}

function tap(hash: Hash, count?: (bytes: number) => void) {
  return async function* (source: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
    for await (const chunk of source) {
      hash.update(chunk)
      count?.(chunk.length)
      yield chunk
    }
  }
}

async function* tarWithOneFile(name: string, size: number): AsyncGenerator<Buffer> {
  yield ustarHeader(name, size)
  for (let left = size; left > 0; left -= CHUNK_BYTES)
    yield randomBytes(Math.min(left, CHUNK_BYTES))
  const padding = (TAR_BLOCK - (size % TAR_BLOCK)) % TAR_BLOCK
  yield Buffer.alloc(padding + 2 * TAR_BLOCK)
}

/** A ustar header (POSIX pax(1), "ustar Interchange Format") for a regular file owned by root. */
function ustarHeader(name: string, size: number): Buffer {
  const header = Buffer.alloc(TAR_BLOCK)
  const octal = (value: number, width: number) => value.toString(8).padStart(width - 1, '0') + '\0'
  header.write(name, 0, 100)
  header.write(octal(0o644, 8), 100)
  header.write(octal(0, 8), 108) // uid
  header.write(octal(0, 8), 116) // gid
  header.write(octal(size, 12), 124)
  header.write(octal(Math.floor(Date.now() / 1000), 12), 136)
  header.write(' '.repeat(8), 148) // the checksum is computed with its own field as spaces
  header.write('0', 156) // typeflag: regular file
  header.write('ustar\u000000', 257) // magic "ustar\0" and version "00"
  header.write('root', 265)
  header.write('root', 297)
  const sum = header.reduce((total, byte) => total + byte, 0)
  header.write(octal(sum, 7) + ' ', 148)
  return header
}

function sha256(bytes: Buffer): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`
}

// --- skopeo ---------------------------------------------------------------

export interface PushOptions {
  /** v2s2 converts to Docker schema 2 (manifest list for an index): new manifest digests. */
  readonly format?: 'oci' | 'v2s2'
  /** `user:password`; anonymous without. */
  readonly creds?: string
  /** Copy every platform of an index (default); false copies this host's platform only. */
  readonly all?: boolean
}

export interface PushedManifest {
  readonly digest: string
  readonly mediaType: string
  /** From the index entry; undefined for a single-manifest image. */
  readonly platform: Platform | undefined
  readonly config: string
  readonly layers: readonly string[]
}

export interface PushedImage {
  /** What the registry holds under the tag: exact bytes, their digest and media type. */
  readonly digest: string
  readonly mediaType: string
  readonly bytes: Buffer
  /** The image manifests: the one manifest, or one per platform of the index. */
  readonly manifests: readonly PushedManifest[]
}

/** Pushes an OCI layout's tag to `ref` (host:port/repo:tag) and describes what the registry now holds. */
export async function pushImage(
  t: Test,
  source: ImageSource,
  ref: string,
  options: PushOptions = {},
): Promise<PushedImage> {
  const args = ['copy', '--quiet', ...(await registryFlags(t, 'dest', options.creds))]
  if (options.all ?? true) args.push('--all')
  if (options.format === 'v2s2') args.push('--format', 'v2s2')
  // Without a conversion skopeo must not rewrite anything: fail rather than push other digests.
  else args.push('--preserve-digests')
  await skopeo(t, [...args, `oci:${source.dir}:${source.tag}`, `docker://${ref}`])
  return describeImage(t, ref, options.creds)
}

export interface RawManifest {
  readonly digest: string
  readonly mediaType: string
  readonly bytes: Buffer
}

/** The manifest `ref` (repo:tag or repo@digest) resolves to, byte for byte, via `skopeo inspect --raw`. */
export async function inspectManifest(t: Test, ref: string, creds?: string): Promise<RawManifest> {
  const flags = await registryFlags(t, '', creds)
  const bytes = await skopeo(t, ['inspect', '--raw', ...flags, `docker://${ref}`])
  return { digest: sha256(bytes), mediaType: mediaTypeOf(parseManifest(bytes)), bytes }
}

/** Describes the image at `ref`: its top manifest and, for an index, each platform's manifest. */
export async function describeImage(t: Test, ref: string, creds?: string): Promise<PushedImage> {
  const top = await inspectManifest(t, ref, creds)
  const json = parseManifest(top.bytes)
  const repository = repositoryOf(ref)
  if (!json.manifests) {
    return {
      ...top,
      manifests: [
        { ...imageParts(json), digest: top.digest, mediaType: top.mediaType, platform: undefined },
      ],
    }
  }
  const manifests: PushedManifest[] = []
  for (const entry of json.manifests) {
    const child = await inspectManifest(t, `${repository}@${entry.digest}`, creds)
    manifests.push({
      ...imageParts(parseManifest(child.bytes)),
      digest: child.digest,
      mediaType: child.mediaType,
      platform: entry.platform,
    })
  }
  return { ...top, manifests }
}

export interface PullOptions {
  readonly creds?: string
  /** Copy every platform of an index (default). */
  readonly all?: boolean
  /** The tag to write in the layout; default `latest`. */
  readonly tag?: string
}

/** Copies `ref` from a registry into an OCI layout at `dir`; answers what the layout's tag points at. */
export async function pullImage(
  t: Test,
  ref: string,
  dir: string,
  options: PullOptions = {},
): Promise<{ digest: string; mediaType: string }> {
  const tag = options.tag ?? 'latest'
  const args = ['copy', '--quiet', ...(await registryFlags(t, 'src', options.creds))]
  if (options.all ?? true) args.push('--all')
  await skopeo(t, [...args, `docker://${ref}`, `oci:${dir}:${tag}`])
  const index = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')) as {
    manifests: (Descriptor & { annotations?: Record<string, string> })[]
  }
  const entry = index.manifests.find((m) => m.annotations?.[REF_NAME] === tag)
  if (!entry) throw new Error(`no ${tag} in ${dir}/index.json`)
  return { digest: entry.digest, mediaType: entry.mediaType }
}

/** The fields of a manifest, index or Docker manifest list that the helpers read. */
interface ManifestJson {
  readonly mediaType?: string
  readonly config?: { readonly digest: string }
  readonly layers?: readonly { readonly digest: string }[]
  readonly manifests?: readonly { readonly digest: string; readonly platform?: Platform }[]
}

function parseManifest(bytes: Buffer): ManifestJson {
  const json = JSON.parse(bytes.toString()) as unknown
  if (typeof json !== 'object' || json === null) throw new Error('manifest is not a JSON object')
  return json
}

function mediaTypeOf(json: ManifestJson): string {
  // OCI made mediaType optional in manifests (image-spec v1.0); infer it as registries do.
  return json.mediaType ?? (json.manifests ? OCI_INDEX : OCI_MANIFEST)
}

function imageParts(json: ManifestJson): { config: string; layers: string[] } {
  if (!json.config || !json.layers) throw new Error('not an image manifest')
  return { config: json.config.digest, layers: json.layers.map((l) => l.digest) }
}

/** `host:5000/library/busybox:latest` or `...@sha256:..` -> `host:5000/library/busybox`. */
function repositoryOf(ref: string): string {
  const at = ref.indexOf('@')
  if (at >= 0) return ref.slice(0, at)
  const colon = ref.lastIndexOf(':')
  return colon > ref.lastIndexOf('/') ? ref.slice(0, colon) : ref
}
