/**
 * GET/HEAD /v2/<name>/manifests/<tag or digest> (OCI distribution-spec,
 * "Pulling manifests"). The client's Accept decides what may be served: a
 * cached manifest only when its media type is acceptable, otherwise the
 * upstream's answer to the manifest types the client accepts. That Accept is
 * normalised (the known manifest types it accepts, in a fixed order), so
 * spellings of one Accept share one cached answer and one upstream request.
 */
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { ManifestCache, ManifestSource } from '../cache/manifests.ts'
import { OciError } from './errors.ts'
import {
  DEFAULT_ACCEPT,
  MEDIA_TYPES,
  acceptsEveryManifestType,
  acceptsRanges,
  manifestContentType,
  parseAccept,
  type AcceptRange,
} from './media-types.ts'
import type { DockerTarget } from './target.ts'

/** Manifest types a narrower client may ask for (Docker's signed schema1 last), in the order sent upstream. */
const NARROW_TYPES = [
  ...Object.values(MEDIA_TYPES),
  'application/vnd.docker.distribution.manifest.v1+prettyjws',
]

/** The manifest types `ranges` accept, as one Accept value in a fixed order. */
function normalisedAccept(ranges: readonly AcceptRange[]): string {
  return NARROW_TYPES.filter((type) => acceptsRanges(ranges, type)).join(', ')
}

export interface ManifestDeps {
  readonly manifests: ManifestCache
}

/** Where a target's manifests come from, as the manifest cache needs it (routes and webhooks alike). */
export function manifestSource(
  target: Pick<DockerTarget, 'remote' | 'registry' | 'repository'>,
): ManifestSource {
  return {
    remote: target.remote,
    registry: target.registry.name,
    repository: target.repository,
    // The canonical answer, and content by digest, are asked for with every type.
    accept: DEFAULT_ACCEPT,
    tagTTLMs: target.registry.tagTTL,
    keepOnNotFound: target.registry.onUpstreamNotFound === 'keep',
  }
}

export async function serveManifest(
  deps: ManifestDeps,
  target: DockerTarget,
  reference: { readonly tag: string } | { readonly digest: string },
  request: FastifyRequest,
  reply: FastifyReply,
): Promise<FastifyReply> {
  const accept = request.headers.accept
  const ranges = parseAccept(accept)
  const canonical = acceptsEveryManifestType(ranges)
  const narrow = canonical ? DEFAULT_ACCEPT : normalisedAccept(ranges)
  // Nothing is asked upstream for a tag the client could not take in any form.
  if ('tag' in reference && narrow === '')
    throw new OciError('MANIFEST_UNKNOWN', undefined, {
      message: 'the client accepts no manifest media type',
    })
  const source = manifestSource(target)
  const manifest =
    'tag' in reference
      ? await deps.manifests.byTag(source, reference.tag, {
          acceptable: (mediaType) => acceptsRanges(ranges, mediaType),
          canonical,
          accept: narrow,
        })
      : await deps.manifests.byDigest(source, reference.digest)
  const head = request.method === 'HEAD'
  reply
    // Checked again here: records cached before types were checked may hold any string.
    .header('content-type', manifestContentType(manifest.mediaType))
    .header('content-length', String(manifest.body.length))
    .header('docker-content-digest', manifest.digest)
    .header('etag', `"${manifest.digest}"`)
  const served = {
    protocol: 'docker',
    pool: target.registry.name,
    subject: target.repository,
    reference: 'tag' in reference ? reference.tag : reference.digest,
    digest: manifest.digest,
    cache: manifest.cache,
    upstream: manifest.upstream,
  } as const
  return reply.code(200).sendPull(served, head ? undefined : manifest.body)
}
