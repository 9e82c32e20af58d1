/**
 * The distribution spec's grammar for what a pull request names (OCI
 * distribution-spec, "Pulling manifests"): repository names, tags and digests,
 * and the split of a /v2/ path into them. Everything is validated before it
 * reaches the cache, a disk path or an upstream URL.
 */

/** Path components: lowercase alphanumerics joined by '.', '_', '__' or runs of '-'. */
const NAME_RE =
  /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$/
const TAG_RE = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/
/** Any algorithm, as the spec allows; only sha256 is supported and other algorithms are refused later. */
const DIGEST_RE = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/

/** Longest repository name accepted (the spec suggests clients keep name+host under 255). */
export const MAX_NAME_LENGTH = 255

export function isRepositoryName(name: string): boolean {
  return name.length <= MAX_NAME_LENGTH && NAME_RE.test(name)
}

export function isTag(reference: string): boolean {
  return TAG_RE.test(reference)
}

/** Digest shape in any algorithm (`sha512:...` passes here and is refused as unsupported). */
export function isDigestShaped(reference: string): boolean {
  return DIGEST_RE.test(reference)
}

export type V2Request =
  | { readonly kind: 'manifest'; readonly name: string; readonly reference: string }
  | { readonly kind: 'blob'; readonly name: string; readonly digest: string }
  | { readonly kind: 'tags'; readonly name: string }
  | { readonly kind: 'referrers'; readonly name: string; readonly digest: string }

/**
 * Splits the part of a path after `/v2/` into the endpoint and its name. The
 * name may itself contain 'manifests' or 'blobs' segments, so the endpoint is
 * found from the end. Returns undefined for anything that is not a pull endpoint.
 */
export function parseV2Path(rest: string): V2Request | undefined {
  const segments = rest.split('/')
  const n = segments.length
  if (n >= 3 && segments[n - 2] === 'tags' && segments[n - 1] === 'list') {
    return { kind: 'tags', name: segments.slice(0, -2).join('/') }
  }
  if (n < 3) return undefined
  const endpoint = segments[n - 2]
  const last = segments[n - 1] ?? ''
  const name = segments.slice(0, -2).join('/')
  switch (endpoint) {
    case 'manifests':
      return { kind: 'manifest', name, reference: last }
    case 'blobs':
      return { kind: 'blob', name, digest: last }
    case 'referrers':
      return { kind: 'referrers', name, digest: last }
    default:
      return undefined
  }
}
