/**
 * GET /v2/_catalog: the repositories this cache holds tags of, named as a
 * client would pull them (the default registry's bare, the others with their
 * registry prefix), with `n`/`last` pagination.
 */
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { ManifestCache } from '../cache/manifests.ts'
import { nextLink, paginate, parsePageQuery } from './pagination.ts'
import type { RegistryEntry } from './target.ts'

export async function serveCatalog(
  manifests: ManifestCache,
  registries: readonly RegistryEntry[],
  request: FastifyRequest,
  reply: FastifyReply,
): Promise<FastifyReply> {
  const query = parsePageQuery(request.query as Record<string, unknown>)
  const names = await Promise.all(
    registries.map(async (registry) => {
      const repositories = await manifests.repositories(registry.name)
      return registry.default ? repositories : repositories.map((r) => `${registry.name}/${r}`)
    }),
  )
  const page = paginate(names.flat(), query)
  if (page.next !== undefined) reply.header('link', nextLink('/v2/_catalog', page.next))
  return reply.send({ repositories: page.items })
}
