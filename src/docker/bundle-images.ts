/**
 * Images for bundles (bundle/ports.ts's BundleImages): resolved, revalidated
 * and fetched as sync lists do (sync-images.ts), blobs opened through the
 * read-through cache, imported tags recorded by the manifest cache.
 */
import type { ManifestCache } from '../cache/manifests.ts'
import type { BundleImages } from '../bundle/ports.ts'
import { dockerSyncImages, imageTarget, type DockerSyncDeps } from './sync-images.ts'
import { bodyStream } from '../cache/served-body.ts'

export interface DockerBundleDeps extends DockerSyncDeps {
  readonly manifests: Pick<ManifestCache, 'revalidate' | 'byDigest' | 'record'>
}

export function dockerBundleImages(deps: DockerBundleDeps): BundleImages {
  const sync = dockerSyncImages(deps)
  return {
    has: (registry) => deps.registries.some((r) => r.name === registry),
    resolve: (registry, repository) => sync.resolve(registry, repository),
    tags: (image) => sync.tags(image),
    async tag(image, tag) {
      const answer = await sync.revalidateTag(image, tag)
      return { ...answer, stale: answer.cache === 'stale' }
    },
    manifest: (image, digest) => sync.manifest(image, digest),
    async open(image, digest) {
      return bodyStream(
        (await deps.cache.serve(digest, imageTarget(deps, image).remote.blob(digest))).body,
      )
    },
    record: (image, tag, manifest, fetchedAt) =>
      deps.manifests.record(image.registry, image.repository, tag, manifest, fetchedAt),
  }
}
