/**
 * Images for sync lists (sync/ports.ts's ImageSync): repositories routed like
 * pulls, tags revalidated through the manifest cache, blobs through the
 * read-through cache, so a sync fetches and verifies exactly as a pull does.
 */
import type { ManifestCache } from '../cache/manifests.ts'
import type { ReadThrough } from '../cache/read-through.ts'
import { SyncPlanError } from '../sync/errors.ts'
import { drain } from '../sync/drain.ts'
import type { ImageRef, ImageSync } from '../sync/ports.ts'
import { manifestSource } from './manifests.ts'
import { isRepositoryName } from './names.ts'
import { DockerRemote, type RegistryPool } from './remote.ts'
import { routeRegistry } from './routing.ts'
import { upstreamTags } from './tags.ts'
import type { DockerTarget, RegistryEntry } from './target.ts'
import { bodyStream, discardBody } from '../cache/served-body.ts'

export interface DockerSyncDeps {
  readonly registries: readonly RegistryEntry[]
  readonly pools: ReadonlyMap<string, RegistryPool>
  readonly manifests: Pick<ManifestCache, 'revalidate' | 'byDigest'>
  readonly cache: Pick<ReadThrough, 'serve'>
}

/** The configured registry and remote of an image a sync or bundle names. */
export function imageTarget(
  deps: Pick<DockerSyncDeps, 'registries' | 'pools'>,
  image: ImageRef,
): Pick<DockerTarget, 'registry' | 'repository' | 'remote'> {
  const registry = deps.registries.find((r) => r.name === image.registry)
  const pool = deps.pools.get(image.registry)
  if (!registry || !pool) throw new SyncPlanError(`no registry is named ${image.registry}`)
  return {
    registry,
    repository: image.repository,
    remote: new DockerRemote(pool, image.repository),
  }
}

export function dockerSyncImages(deps: DockerSyncDeps): ImageSync {
  const target = (image: ImageRef) => imageTarget(deps, image)
  return {
    resolve(registry, repository) {
      const routed = routeRegistry(deps.registries, repository, registry)
      if (!routed || !isRepositoryName(routed.repository))
        throw new SyncPlanError(
          `${repository}: not a repository of ${registry ?? 'the default registry'}`,
        )
      return { registry: routed.registry.name, repository: routed.repository }
    },
    tags: (image) => upstreamTags(target(image)),
    revalidateTag: (image, tag) => deps.manifests.revalidate(manifestSource(target(image)), tag),
    manifest: (image, digest) => deps.manifests.byDigest(manifestSource(target(image)), digest),
    async blob(image, digest, paced) {
      const served = await deps.cache.serve(digest, target(image).remote.blob(digest))
      if (served.cache === 'hit') {
        discardBody(served.body)
        return { bytes: 0 }
      }
      return { bytes: await drain(bodyStream(served.body), paced) }
    },
  }
}
