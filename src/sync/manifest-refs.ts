/**
 * What an image manifest or index refers to, read from its JSON without
 * knowing the media types: an index's children (by platform) and an image
 * manifest's blobs. Used by sync runs and bundle exports alike.
 */
import type { SyncManifest } from './ports.ts'

interface Descriptor {
  readonly digest?: unknown
  readonly size?: unknown
  readonly platform?: {
    readonly os?: unknown
    readonly architecture?: unknown
    readonly variant?: unknown
  }
}

/** A blob a manifest names, with the size it gives for it. */
export interface BlobDescriptor {
  readonly digest: string
  readonly size: number
}

function parseManifest(manifest: Pick<SyncManifest, 'body'>): {
  manifests?: Descriptor[]
  config?: Descriptor
  layers?: Descriptor[]
  blobs?: Descriptor[]
} {
  try {
    const json = JSON.parse(manifest.body.toString('utf8')) as unknown
    return typeof json === 'object' && json !== null ? json : {}
  } catch {
    return {}
  }
}

const SHA256 = /^sha256:[a-f0-9]{64}$/

/** An index's children of the wanted platforms (every one when none are listed); none for an image manifest. */
export function childManifests(
  manifest: Pick<SyncManifest, 'body'>,
  platforms: readonly string[] | undefined,
): string[] {
  const children = parseManifest(manifest).manifests
  if (!Array.isArray(children)) return []
  return children.flatMap((child) => {
    if (typeof child.digest !== 'string' || !SHA256.test(child.digest)) return []
    if (!platforms) return [child.digest]
    const p = child.platform
    const name = [p?.os, p?.architecture, p?.variant].filter((v) => typeof v === 'string').join('/')
    const short = [p?.os, p?.architecture].filter((v) => typeof v === 'string').join('/')
    return platforms.includes(name) || platforms.includes(short) ? [child.digest] : []
  })
}

/**
 * The config and layers of an image manifest (and an OCI artifact's `blobs`),
 * each once; a descriptor without a valid digest or size is left out.
 */
export function blobDescriptors(manifest: Pick<SyncManifest, 'body'>): BlobDescriptor[] {
  const json = parseManifest(manifest)
  const seen = new Map<string, BlobDescriptor>()
  for (const d of [json.config, ...(json.layers ?? []), ...(json.blobs ?? [])]) {
    if (typeof d?.digest !== 'string' || !SHA256.test(d.digest)) continue
    const size =
      typeof d.size === 'number' && Number.isSafeInteger(d.size) && d.size >= 0 ? d.size : -1
    if (size >= 0) seen.set(d.digest, { digest: d.digest, size })
  }
  return [...seen.values()]
}
