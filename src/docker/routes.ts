/**
 * The Docker Registry v2 / OCI distribution pull API. Validates and routes
 * every request before anything touches the cache or an upstream; answers
 * errors in the OCI format; refuses writes.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { CachedDocuments } from '../cache/cached-documents.ts'
import type { ManifestCache } from '../cache/manifests.ts'
import type { ReadThrough } from '../cache/read-through.ts'
import { RateLimitedError } from '../auth/errors.ts'
import type { ErrorRenderer } from '../errors.ts'
import type { PullGuard } from '../pull-guard.ts'
import { serveBlob } from './blobs.ts'
import { serveCatalog } from './catalog.ts'
import { OciError, toOciError } from './errors.ts'
import { serveManifest } from './manifests.ts'
import { isDigestShaped, isRepositoryName, isTag, parseV2Path } from './names.ts'
import { serveReferrers } from './referrers.ts'
import { routeRegistry } from './routing.ts'
import { DockerRemote, type RegistryPool } from './remote.ts'
import { serveTags } from './tags.ts'
import type { DockerTarget, RegistryEntry } from './target.ts'

export interface DockerRoutesDeps {
  readonly registries: readonly RegistryEntry[]
  readonly pools: ReadonlyMap<string, RegistryPool>
  readonly cache: ReadThrough
  readonly manifests: ManifestCache
  readonly documents: CachedDocuments
  readonly guard: PullGuard
}

const API_VERSION = { 'docker-distribution-api-version': 'registry/2.0' }

/** Renders any error on a Docker route as the OCI error body. */
export const renderDockerError: ErrorRenderer = (error, request, reply) => {
  const oci = toOciError(error, request.pool)
  if (error instanceof RateLimitedError) void reply.header('retry-after', error.retryAfterSeconds)
  return reply
    .code(oci.status)
    .headers(API_VERSION)
    .header('content-type', 'application/json')
    .send(oci.body())
}

export function registerDockerRoutes(app: FastifyInstance, deps: DockerRoutesDeps): void {
  const config = { protocol: 'docker' }
  app.get('/v2/', { config }, async (_request, reply) => reply.headers(API_VERSION).send({}))
  app.get('/v2/_catalog', { config }, async (request, reply) =>
    serveCatalog(deps.manifests, deps.registries, request, reply.headers(API_VERSION)),
  )
  app.route({
    method: ['GET', 'HEAD'],
    url: '/v2/*',
    config,
    exposeHeadRoute: false,
    handler: async (request, reply) => handlePull(deps, request, reply),
  })
  app.route({
    method: ['POST', 'PUT', 'PATCH', 'DELETE'],
    url: '/v2/*',
    config,
    handler: () => {
      throw new OciError('UNSUPPORTED', undefined, {
        message: 'pullthrough is a pull-through cache: pushes and deletes are not supported',
      })
    },
  })
}

async function handlePull(
  deps: DockerRoutesDeps,
  request: FastifyRequest,
  reply: FastifyReply,
): Promise<FastifyReply> {
  reply.headers(API_VERSION)
  const path = (request.params as { '*': string })['*']
  const parsed = parseV2Path(path)
  if (!parsed)
    throw new OciError('UNSUPPORTED', undefined, { status: 404, message: 'not a pull endpoint' })
  const target = resolveTarget(deps, request, reply, parsed.name)
  switch (parsed.kind) {
    case 'blob':
      return serveBlob(deps.cache, target, checkDigest(parsed.digest), request, reply)
    case 'manifest': {
      const { reference } = parsed
      if (isTag(reference)) return serveManifest(deps, target, { tag: reference }, request, reply)
      const digest = checkDigest(reference)
      return serveManifest(deps, target, { digest }, request, reply)
    }
    case 'tags':
      return serveTags(deps.documents, target, request, reply)
    case 'referrers':
      return serveReferrers(target, checkDigest(parsed.digest), request, reply)
  }
}

/**
 * Which registry, repository and pool a request names, once the client may
 * pull it; OCI errors for bad or unknown names and refusals.
 */
function resolveTarget(
  deps: DockerRoutesDeps,
  request: FastifyRequest,
  reply: FastifyReply,
  name: string,
): DockerTarget {
  const ns = (request.query as { ns?: unknown }).ns
  const routed = routeRegistry(deps.registries, name, typeof ns === 'string' ? ns : undefined)
  if (!routed)
    throw new OciError('NAME_UNKNOWN', undefined, {
      message: 'no configured registry serves this name',
    })
  request.pool = routed.registry.name
  if (!isRepositoryName(routed.repository)) throw new OciError('NAME_INVALID')
  const pulled = {
    protocol: 'docker',
    pool: routed.registry.name,
    name: routed.repository,
  } as const
  deps.guard(request, reply, pulled, name)
  const pool = deps.pools.get(routed.registry.name)
  if (!pool) throw new OciError('NAME_UNKNOWN')
  return {
    registry: routed.registry,
    repository: routed.repository,
    clientName: name,
    remote: new DockerRemote(pool, routed.repository),
  }
}

/** A `sha256:<64 hex>` digest; DIGEST_INVALID for malformed ones, UNSUPPORTED for other algorithms. */
function checkDigest(reference: string): string {
  if (!isDigestShaped(reference))
    throw new OciError('DIGEST_INVALID', undefined, { message: 'invalid digest' })
  if (!reference.startsWith('sha256:'))
    throw new OciError('UNSUPPORTED', undefined, {
      status: 400,
      message: 'only sha256 digests are supported',
    })
  return reference
}
