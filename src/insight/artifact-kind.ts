/**
 * What a stored blob is, for the catalog: told by the PyPI file name it was
 * pulled as, else by its own first bytes. A manifest or index names its media
 * type itself; for other content the media type is its container format
 * (gzip, zstd, tar, zip), since a layer's or config's declared type lives in
 * the manifest that points at it, not in the blob.
 */

export type ArtifactKind =
  'manifest' | 'index' | 'config' | 'layer' | 'wheel' | 'sdist' | 'metadata' | 'file' | 'blob'

export interface ArtifactType {
  readonly kind: ArtifactKind
  readonly mediaType: string
}

/** Bytes read from the start of a blob to tell what it is. */
export const SNIFF_BYTES = 64 * 1024
/** A JSON blob up to this size is read whole (the manifest size limit of registries). */
export const MAX_SNIFFED_JSON_BYTES = 4 * 1024 * 1024

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json'
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json'

/** PyPI distribution file names by suffix, longest first. */
const FILE_TYPES: readonly (readonly [string, ArtifactType])[] = [
  ['.metadata', { kind: 'metadata', mediaType: 'text/plain' }],
  ['.whl', { kind: 'wheel', mediaType: 'application/zip' }],
  ['.tar.gz', { kind: 'sdist', mediaType: 'application/gzip' }],
  ['.tgz', { kind: 'sdist', mediaType: 'application/gzip' }],
  ['.tar.bz2', { kind: 'sdist', mediaType: 'application/x-bzip2' }],
  ['.zip', { kind: 'sdist', mediaType: 'application/zip' }],
  ['.egg', { kind: 'file', mediaType: 'application/zip' }],
]

/** The type a PyPI file name gives, if it is a known distribution format. */
export function typeOfFileName(name: string): ArtifactType | undefined {
  const lower = name.toLowerCase()
  return FILE_TYPES.find(([suffix]) => lower.endsWith(suffix))?.[1]
}

/**
 * The type of a blob from its first bytes (`head`: the whole blob when it is
 * JSON of at most MAX_SNIFFED_JSON_BYTES, else at most SNIFF_BYTES).
 */
export function typeOfContent(head: Buffer, size: number): ArtifactType {
  if (startsWith(head, [0x1f, 0x8b])) return { kind: 'layer', mediaType: 'application/gzip' }
  if (startsWith(head, [0x28, 0xb5, 0x2f, 0xfd]))
    return { kind: 'layer', mediaType: 'application/zstd' }
  if (head.length >= 262 && head.toString('latin1', 257, 262) === 'ustar')
    return { kind: 'layer', mediaType: 'application/x-tar' }
  if (startsWith(head, [0x50, 0x4b, 0x03, 0x04]))
    return { kind: 'file', mediaType: 'application/zip' }
  if (head.length === size && looksLikeJson(head)) return typeOfJson(head)
  return { kind: 'blob', mediaType: 'application/octet-stream' }
}

/** True when the bytes start like a JSON object: a manifest, index or config worth reading whole. */
export function looksLikeJson(head: Buffer): boolean {
  for (const byte of head) {
    if (byte === 0x7b) return true // {
    if (byte !== 0x20 && byte !== 0x0a && byte !== 0x0d && byte !== 0x09) return false
  }
  return false
}

function typeOfJson(bytes: Buffer): ArtifactType {
  let doc: unknown
  try {
    doc = JSON.parse(bytes.toString('utf8'))
  } catch {
    return { kind: 'blob', mediaType: 'application/octet-stream' }
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc))
    return { kind: 'blob', mediaType: 'application/json' }
  const fields = doc as Record<string, unknown>
  const declared = typeof fields.mediaType === 'string' ? fields.mediaType : undefined
  if (Array.isArray(fields.manifests)) return { kind: 'index', mediaType: declared ?? OCI_INDEX }
  if (Array.isArray(fields.layers) || Array.isArray(fields.fsLayers))
    return { kind: 'manifest', mediaType: declared ?? OCI_MANIFEST }
  if (typeof fields.rootfs === 'object' || typeof fields.architecture === 'string')
    return { kind: 'config', mediaType: declared ?? 'application/json' }
  return { kind: 'blob', mediaType: declared ?? 'application/json' }
}

function startsWith(head: Buffer, magic: readonly number[]): boolean {
  return head.length >= magic.length && magic.every((byte, i) => head[i] === byte)
}
