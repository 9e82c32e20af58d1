/**
 * Writes a planned bundle as a tar stream (format.ts): the manifest, then each
 * entry in order, opened only when its turn comes (a blob not yet cached is
 * fetched, verified, as it is written), then SHA256SUMS. Nothing is held in
 * memory but the generated entries. A failure mid-way destroys the stream, so
 * the reader sees a cut, never a bundle that looks whole.
 */
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import tar from 'tar-stream'
import { digestOf } from '../storage/digest.ts'
import {
  BUNDLE_FORMAT,
  BUNDLE_MANIFEST,
  BUNDLE_VERSION,
  SUMS,
  sums,
  type BundleImage,
  type BundleManifest,
  type BundlePackage,
} from './format.ts'
import { layoutEntries, simpleEntries } from './layout.ts'

/** Content whose bytes are opened when the writer reaches it. */
export interface ContentEntry {
  readonly path: string
  readonly digest: string
  readonly size: number
  readonly open: () => Promise<Readable>
}

export interface BundlePlan {
  readonly images: readonly BundleImage[]
  readonly packages: readonly BundlePackage[]
  /** Blobs (manifests first) and files, each path once. */
  readonly content: readonly ContentEntry[]
}

/** The tar stream of `plan`; `onEntry` hears of each entry as it starts. */
export function writeBundle(
  plan: BundlePlan,
  createdAt: Date,
  onEntry: (path: string, size: number) => void = () => undefined,
): Readable {
  const generated = [...layoutEntries(plan.images), ...simpleEntries(plan.packages)]
  const manifest: BundleManifest = {
    format: BUNDLE_FORMAT,
    version: BUNDLE_VERSION,
    createdAt: createdAt.toISOString(),
    images: [...plan.images],
    packages: [...plan.packages],
    entries: [...generated, ...plan.content].map(({ path, digest, size }) => ({
      path,
      digest,
      size,
    })),
  }
  const manifestBody = Buffer.from(`${JSON.stringify(manifest, null, 1)}\n`)
  const pack = tar.pack()
  const mtime = createdAt
  const add = (path: string, size: number) => {
    onEntry(path, size)
    return pack.entry({ name: path, size, mtime, mode: 0o644, type: 'file' })
  }
  const write = async () => {
    add(BUNDLE_MANIFEST, manifestBody.length).end(manifestBody)
    for (const entry of generated) add(entry.path, entry.size).end(entry.body)
    for (const entry of plan.content) {
      const source = await entry.open()
      await pipeline(source, add(entry.path, entry.size) as unknown as NodeJS.WritableStream)
    }
    const text = sums([
      { path: BUNDLE_MANIFEST, digest: digestOf(manifestBody) },
      ...manifest.entries,
    ])
    add(SUMS, Buffer.byteLength(text)).end(text)
    pack.finalize()
  }
  write().catch((error: unknown) => pack.destroy(error as Error))
  return Readable.from(pack as AsyncIterable<Buffer>)
}
