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

interface AcceptRange {
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
  const ranges = parseAccept(accept)
  if (ranges.length === 0) return true
  const type = mediaType.toLowerCase()
  const [major] = type.split('/')
  const match =
    ranges.find((r) => r.type === type) ??
    ranges.find((r) => r.type === `${major ?? ''}/*`) ??
    ranges.find((r) => r.type === '*/*')
  return match !== undefined && match.q > 0
}
