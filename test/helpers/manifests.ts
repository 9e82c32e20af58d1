/**
 * Manifests pushed straight through a real registry's HTTP API: quick wire-level
 * fixtures for the manifest routes (whole images for real clients come from
 * images.ts). Layers here are random bytes, not tar archives.
 */
import { request } from 'undici'
import { digestOf } from '../../src/storage/digest.ts'
import { randomBlob } from './streams.ts'

import {
  DOCKER_MANIFEST,
  DOCKER_MANIFEST_LIST as DOCKER_LIST,
  OCI_INDEX,
  OCI_MANIFEST,
} from './images.ts'

export { DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST }

export interface BlobPusher {
  readonly url: string
  pushBlob(repository: string, digest: string, data: Buffer): Promise<void>
}

export interface PushedManifest {
  readonly digest: string
  readonly mediaType: string
  readonly body: Buffer
  /** Digests of the config and layer blobs (for single manifests). */
  readonly blobs: readonly { digest: string; data: Buffer }[]
}

/** PUTs a manifest body under `reference` (a tag or its digest). */
export async function putManifest(
  registry: BlobPusher,
  repository: string,
  reference: string,
  mediaType: string,
  body: Buffer,
): Promise<string> {
  const res = await request(`${registry.url}/v2/${repository}/manifests/${reference}`, {
    method: 'PUT',
    headers: { 'content-type': mediaType },
    body,
  })
  const text = await res.body.text()
  if (res.statusCode !== 201) throw new Error(`manifest PUT answered ${res.statusCode}: ${text}`)
  return digestOf(body)
}

/** Pushes a config and `layers` random layers, then an image manifest tagged `tag`. */
export async function pushManifest(
  registry: BlobPusher,
  repository: string,
  tag: string,
  options: { mediaType?: string; layers?: number; platform?: string } = {},
): Promise<PushedManifest> {
  const mediaType = options.mediaType ?? OCI_MANIFEST
  const docker = mediaType === DOCKER_MANIFEST
  const [os = 'linux', architecture = 'amd64'] = (options.platform ?? 'linux/amd64').split('/')
  const config = Buffer.from(
    JSON.stringify({
      architecture,
      os,
      rootfs: { type: 'layers', diff_ids: [] },
      nonce: Math.random(),
    }),
  )
  const configDigest = digestOf(config)
  const layers = Array.from({ length: options.layers ?? 2 }, (_, i) => randomBlob(1024 * (i + 1)))
  await registry.pushBlob(repository, configDigest, config)
  for (const layer of layers) await registry.pushBlob(repository, layer.digest, layer.data)
  const body = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType,
      config: {
        mediaType: docker
          ? 'application/vnd.docker.container.image.v1+json'
          : 'application/vnd.oci.image.config.v1+json',
        digest: configDigest,
        size: config.length,
      },
      layers: layers.map((layer) => ({
        mediaType: docker
          ? 'application/vnd.docker.image.rootfs.diff.tar.gzip'
          : 'application/vnd.oci.image.layer.v1.tar+gzip',
        digest: layer.digest,
        size: layer.data.length,
      })),
    }),
  )
  const digest = await putManifest(registry, repository, tag, mediaType, body)
  return {
    digest,
    mediaType,
    body,
    blobs: [{ digest: configDigest, data: config }, ...layers],
  }
}

/** Pushes one manifest per platform and an index (OCI or Docker list) over them, tagged `tag`. */
export async function pushIndex(
  registry: BlobPusher,
  repository: string,
  tag: string,
  options: { mediaType?: string; platforms?: string[] } = {},
): Promise<PushedManifest & { manifests: PushedManifest[] }> {
  const mediaType = options.mediaType ?? OCI_INDEX
  const child = mediaType === DOCKER_LIST ? DOCKER_MANIFEST : OCI_MANIFEST
  const platforms = options.platforms ?? ['linux/amd64', 'linux/arm64']
  const manifests: PushedManifest[] = []
  for (const platform of platforms) {
    const pushed = await pushManifest(
      registry,
      repository,
      `${tag}-${platform.replace('/', '-')}`,
      {
        mediaType: child,
        platform,
      },
    )
    manifests.push(pushed)
  }
  const body = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType,
      manifests: manifests.map((m, i) => {
        const [os, architecture] = (platforms[i] ?? '').split('/')
        return {
          mediaType: m.mediaType,
          digest: m.digest,
          size: m.body.length,
          platform: { os, architecture },
        }
      }),
    }),
  )
  const digest = await putManifest(registry, repository, tag, mediaType, body)
  return { digest, mediaType, body, blobs: [], manifests }
}
