/**
 * GET/HEAD /v2/<name>/manifests/<tag or digest> (OCI distribution-spec,
 * "Pulling manifests"). The client's Accept decides what may be served: a
 * cached manifest only when its media type is acceptable, otherwise the
 * upstream is asked with the client's own Accept.
 */
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { ManifestCache, ManifestSource } from '../cache/manifests.ts'
import type { Logger } from '../observability/logger.ts'
import type { Metrics } from '../observability/metrics.ts'
import { recordPull } from '../observability/pull-event.ts'
import {
  DEFAULT_ACCEPT,
  acceptsEveryManifestType,
  acceptsRanges,
  manifestContentType,
  parseAccept,
} from './media-types.ts'
import type { DockerTarget } from './target.ts'

export interface ManifestDeps {
  readonly manifests: ManifestCache
  readonly logger: Logger
  readonly metrics: Metrics
}

export async function serveManifest(
  deps: ManifestDeps,
  target: DockerTarget,
  reference: { readonly tag: string } | { readonly digest: string },
  request: FastifyRequest,
  reply: FastifyReply,
): Promise<FastifyReply> {
  const started = performance.now()
  const accept = request.headers.accept
  const ranges = parseAccept(accept)
  const canonical = acceptsEveryManifestType(ranges)
  const source: ManifestSource = {
    pool: target.pool,
    registry: target.registry.name,
    repository: target.repository,
    authScope: target.authScope,
    // Clients that take every type share one upstream answer (and one single-flight key).
    accept: canonical || accept === undefined ? DEFAULT_ACCEPT : accept,
    tagTTLMs: target.registry.tagTTL,
  }
  const manifest =
    'tag' in reference
      ? await deps.manifests.byTag(source, reference.tag, {
          acceptable: (mediaType) => acceptsRanges(ranges, mediaType),
          canonical,
        })
      : await deps.manifests.byDigest(source, reference.digest)
  const head = request.method === 'HEAD'
  reply
    // Checked again here: records cached before types were checked may hold any string.
    .header('content-type', manifestContentType(manifest.mediaType))
    .header('content-length', String(manifest.body.length))
    .header('docker-content-digest', manifest.digest)
    .header('etag', `"${manifest.digest}"`)
  recordPull(deps.logger, deps.metrics, {
    protocol: 'docker',
    pool: target.registry.name,
    subject: target.repository,
    reference: 'tag' in reference ? reference.tag : reference.digest,
    digest: manifest.digest,
    action: head ? 'head' : 'get',
    cache: manifest.cache,
    bytes: head ? 0 : manifest.body.length,
    durationMs: performance.now() - started,
    upstream: manifest.upstream,
    clientIp: request.ip,
  })
  return reply.code(200).send(head ? undefined : manifest.body)
}
