/**
 * Manifest media types and Accept negotiation. A cached manifest is served
 * only when the client accepts its media type; otherwise the upstream is asked
 * with the client's own Accept (a client that only knows Docker schema2 must
 * not get an OCI index it cannot read).
 */

export const MEDIA_TYPES = {
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
} as const

/** What pullthrough asks upstreams for when the client sent no Accept: every current manifest type. */
export const DEFAULT_ACCEPT = [
  MEDIA_TYPES.ociIndex,
  MEDIA_TYPES.ociManifest,
  MEDIA_TYPES.dockerManifestList,
  MEDIA_TYPES.dockerManifest,
].join(', ')

const KNOWN = new Set<string>(Object.values(MEDIA_TYPES))

export function isManifestMediaType(mediaType: string): boolean {
  return KNOWN.has(mediaType)
}

export interface AcceptRange {
  readonly type: string
  readonly q: number
}

/** The media ranges of an Accept header (one string or several header lines), without parameters but q. */
export function parseAccept(header: string | string[] | undefined): AcceptRange[] {
  const values = header === undefined ? [] : Array.isArray(header) ? header : [header]
  return values
    .flatMap((value) => value.split(','))
    .map((part) => {
      const [type = '', ...params] = part.split(';').map((p) => p.trim())
      const qParam = params.find((p) => /^q=/i.test(p))
      const q = qParam === undefined ? 1 : Number(qParam.slice(2))
      return { type: type.toLowerCase(), q: Number.isFinite(q) ? q : 0 }
    })
    .filter((range) => range.type !== '')
}

/**
 * True when `mediaType` is acceptable to a client that sent `accept`. No
 * Accept, or one with a wildcard, accepts anything; q=0 refuses.
 */
export function accepts(accept: string | string[] | undefined, mediaType: string): boolean {
  return acceptsRanges(parseAccept(accept), mediaType)
}

/** `accepts` for an Accept header parsed once with parseAccept (the hot path asks several times). */
export function acceptsRanges(ranges: readonly AcceptRange[], mediaType: string): boolean {
  if (ranges.length === 0) return true
  const type = mediaType.toLowerCase()
  const [major] = type.split('/')
  const match =
    ranges.find((r) => r.type === type) ??
    ranges.find((r) => r.type === `${major ?? ''}/*`) ??
    ranges.find((r) => r.type === '*/*')
  return match !== undefined && match.q > 0
}

/** Docker's schema1 manifests, still served by a few old registries; passed through, never converted. */
export const SCHEMA1_MEDIA_TYPES = {
  signed: 'application/vnd.docker.distribution.manifest.v1+prettyjws',
  unsigned: 'application/vnd.docker.distribution.manifest.v1+json',
} as const

/** What a manifest of no known type is served as: opaque bytes, never a type a browser renders. */
export const OPAQUE_MEDIA_TYPE = 'application/octet-stream'

/** Every type a manifest may be served with (the Content-Type comes from upstream data). */
const SERVABLE = new Set<string>([...KNOWN, ...Object.values(SCHEMA1_MEDIA_TYPES)])

/** `mediaType` when it is a known manifest media type, else application/octet-stream. */
export function manifestContentType(mediaType: string | undefined): string {
  const type = mediaType?.trim().toLowerCase()
  return type !== undefined && SERVABLE.has(type) ? type : OPAQUE_MEDIA_TYPE
}

/**
 * The media type of a manifest body, always a known manifest type or
 * application/octet-stream (it becomes the Content-Type, so an upstream must
 * not choose it freely: a body claiming `text/html` would be served as HTML).
 * The body's own `mediaType` decides (it is part of what the digest covers),
 * and one that is not a known manifest type makes it opaque; an OCI manifest
 * or index may omit it, so then a known Content-Type from the upstream, then
 * the shape, decide.
 */
export function manifestMediaType(body: Buffer, contentType: string | undefined): string {
  const header = contentType?.split(';')[0]?.trim().toLowerCase()
  let parsed: unknown
  try {
    parsed = JSON.parse(body.toString('utf8'))
  } catch {
    parsed = undefined
  }
  if (typeof parsed === 'object' && parsed !== null) {
    const doc = parsed as Record<string, unknown>
    if (typeof doc.mediaType === 'string' && doc.mediaType !== '')
      return manifestContentType(doc.mediaType)
    if (header !== undefined && SERVABLE.has(header)) return header
    if (doc.schemaVersion === 1) return SCHEMA1_MEDIA_TYPES.signed
    if (Array.isArray(doc.manifests)) return MEDIA_TYPES.ociIndex
    if (Array.isArray(doc.layers)) return MEDIA_TYPES.ociManifest
  }
  return manifestContentType(header)
}

/** True when the client takes every current manifest type, so the upstream's answer is the canonical one. */
export function acceptsEveryManifestType(ranges: readonly AcceptRange[]): boolean {
  return Object.values(MEDIA_TYPES).every((type) => acceptsRanges(ranges, type))
}
