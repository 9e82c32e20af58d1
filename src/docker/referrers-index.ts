/**
 * The body of a referrers answer (OCI distribution-spec 1.1, "Listing
 * Referrers"): an OCI image index whose `manifests` are descriptors. An
 * upstream's answer is parsed into this shape and serialized again, so only
 * fields the spec defines, with well-formed values, ever reach a client.
 */
import { MEDIA_TYPES } from './media-types.ts'

/** A descriptor of a manifest that refers to the subject (OCI image-spec descriptor.md). */
export interface ReferrerDescriptor {
  readonly mediaType: string
  readonly digest: string
  readonly size: number
  readonly artifactType?: string
  readonly annotations?: Readonly<Record<string, string>>
}

export interface ReferrersIndex {
  readonly schemaVersion: 2
  readonly mediaType: typeof MEDIA_TYPES.ociIndex
  readonly manifests: readonly ReferrerDescriptor[]
  readonly annotations?: Readonly<Record<string, string>>
}

/** RFC 6838 `type/subtype` (restricted-name), as descriptor.md requires of mediaType. */
const MEDIA_TYPE_RE =
  /^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}\/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$/
/** image-spec descriptor.md digest grammar: algorithm ":" encoded. */
const DIGEST_RE = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/
/** Longest digest accepted (sha512 hex is 135 characters). */
const MAX_DIGEST_LENGTH = 256

/** The parsed index, or undefined when `body` is not an OCI image index of descriptors. */
export function parseReferrersIndex(body: Buffer): ReferrersIndex | undefined {
  let doc: unknown
  try {
    doc = JSON.parse(body.toString('utf8'))
  } catch {
    return undefined
  }
  if (!isObject(doc) || doc.schemaVersion !== 2 || !Array.isArray(doc.manifests)) return undefined
  if (doc.mediaType !== undefined && doc.mediaType !== MEDIA_TYPES.ociIndex) return undefined
  const manifests: ReferrerDescriptor[] = []
  for (const entry of doc.manifests as unknown[]) {
    const descriptor = parseDescriptor(entry)
    if (!descriptor) return undefined
    manifests.push(descriptor)
  }
  const annotations = parseAnnotations(doc.annotations)
  if (annotations === null) return undefined
  return {
    schemaVersion: 2,
    mediaType: MEDIA_TYPES.ociIndex,
    manifests,
    ...(annotations === undefined ? {} : { annotations }),
  }
}

/** The index as JSON, with `<`, `>` and `&` escaped so no markup appears even in annotations. */
export function renderReferrersIndex(index: ReferrersIndex): string {
  return JSON.stringify(index).replace(
    /[<>&]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  )
}

function parseDescriptor(entry: unknown): ReferrerDescriptor | undefined {
  if (!isObject(entry)) return undefined
  const { mediaType, digest, size, artifactType } = entry
  if (typeof mediaType !== 'string' || !MEDIA_TYPE_RE.test(mediaType)) return undefined
  if (typeof digest !== 'string' || digest.length > MAX_DIGEST_LENGTH || !DIGEST_RE.test(digest))
    return undefined
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) return undefined
  if (
    artifactType !== undefined &&
    (typeof artifactType !== 'string' || !MEDIA_TYPE_RE.test(artifactType))
  )
    return undefined
  const annotations = parseAnnotations(entry.annotations)
  if (annotations === null) return undefined
  return {
    mediaType,
    digest,
    size,
    ...(artifactType === undefined ? {} : { artifactType }),
    ...(annotations === undefined ? {} : { annotations }),
  }
}

/** A string-to-string map; undefined when absent, null when malformed. */
function parseAnnotations(value: unknown): Record<string, string> | undefined | null {
  if (value === undefined) return undefined
  if (!isObject(value)) return null
  const entries = Object.entries(value)
  if (!entries.every(([, v]) => typeof v === 'string')) return null
  return Object.fromEntries(entries) as Record<string, string>
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}
