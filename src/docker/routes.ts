/**
 * The Docker Registry v2 / OCI distribution pull API. Validates and routes
 * every request before anything touches the cache or an upstream; answers
 * errors in the OCI format; refuses writes.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { FillSource } from '../cache/fill.ts'
import type { ReadThrough } from '../cache/read-through.ts'
import type { ErrorRenderer } from '../http/errors.ts'
import { serveBlob } from './blobs.ts'
import { OciError, toOciError } from './errors.ts'
import { isDigestShaped, isRepositoryName, parseV2Path } from './names.ts'
import { routeRegistry, type RegistryRef } from './routing.ts'

/** An upstream pool, as the cache layer takes it. */
type Pool = FillSource['pool']

export interface DockerRoutesDeps {
  readonly registries: readonly RegistryRef[]
  readonly pools: ReadonlyMap<string, Pool>
  readonly cache: ReadThrough
}

const API_VERSION = { 'docker-distribution-api-version': 'registry/2.0' }

declare module 'fastify' {
  interface FastifyRequest {
    /** The registry a Docker request was routed to, for error details. */
    dockerRegistry?: string
  }
}

/** Renders any error on a Docker route as the OCI error body. */
export const renderDockerError: ErrorRenderer = (error, request, reply) => {
  const oci = toOciError(error, request.dockerRegistry)
  return reply
    .code(oci.status)
    .headers(API_VERSION)
    .header('content-type', 'application/json')
    .send(oci.body())
}

export function registerDockerRoutes(app: FastifyInstance, deps: DockerRoutesDeps): void {
  const config = { protocol: 'docker' }
  app.get('/v2/', { config }, async (_request, reply) => reply.headers(API_VERSION).send({}))
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
  const ns = (request.query as { ns?: unknown }).ns
  const routed = routeRegistry(
    deps.registries,
    parsed.name,
    typeof ns === 'string' ? ns : undefined,
  )
  if (!routed)
    throw new OciError('NAME_UNKNOWN', undefined, {
      message: 'no configured registry serves this name',
    })
  request.dockerRegistry = routed.registry.name
  if (!isRepositoryName(routed.repository)) throw new OciError('NAME_INVALID')
  const pool = deps.pools.get(routed.registry.name)
  if (!pool) throw new OciError('NAME_UNKNOWN')
  const scope = `repository:${routed.repository}:pull`
  switch (parsed.kind) {
    case 'blob': {
      if (!isDigestShaped(parsed.digest))
        throw new OciError('DIGEST_INVALID', undefined, { message: 'invalid digest' })
      if (!parsed.digest.startsWith('sha256:')) {
        throw new OciError('UNSUPPORTED', undefined, {
          status: 400,
          message: 'only sha256 digests are supported',
        })
      }
      return serveBlob(
        deps.cache,
        {
          digest: parsed.digest,
          source: {
            pool,
            path: `v2/${routed.repository}/blobs/${parsed.digest}`,
            authScope: scope,
          },
          pull: { registry: routed.registry.name, repository: routed.repository },
        },
        request,
        reply,
      )
    }
    default:
      // Manifests, tags and referrers are the next part of the Docker adapter.
      throw new OciError('UNSUPPORTED', undefined, {
        status: 501,
        message: `${parsed.kind} requests are not implemented yet`,
      })
  }
}
