/**
 * Reads a bundle as it streams past (format.ts): the manifest first, then each
 * entry checked against the size and digest the manifest gives it, then
 * SHA256SUMS last. Content entries (blobs, files) go to the sink, which must
 * consume and check them; the small generated ones are checked here. Nothing
 * is held whole in memory but the manifest and one small entry at a time.
 *
 * Any departure from the manifest (an entry it does not list, a size or
 * digest that differs, an entry missing at the end, a cut mid-entry) rejects
 * with BundleInvalidError, saying which entry.
 */
import { Writable, type Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import tar from 'tar-stream'
import { digestOf, parseDigest } from '../storage/digest.ts'
import { createVerifyStream } from '../storage/verify-stream.ts'
import { DigestMismatchError } from '../storage/errors.ts'
import { BundleInvalidError } from './errors.ts'
import {
  BUNDLE_MANIFEST,
  MAX_MANIFEST_BYTES,
  MAX_TEXT_ENTRY_BYTES,
  SUMS,
  bundleManifestSchema,
  sums,
  type BundleEntry,
  type BundleManifest,
} from './format.ts'

export interface BundleSink {
  /** The manifest, before any other entry: throw to refuse the bundle at once. */
  manifest(manifest: BundleManifest): Promise<void>
  /** A blob or a file: consume `stream` whole and reject with DigestMismatchError when it does not match `entry.digest`. */
  content(entry: BundleEntry, stream: AsyncIterable<Buffer>): Promise<void>
}

/** Entries whose bytes the sink takes: the content-addressed ones. */
export function isContentEntry(path: string): boolean {
  return path.startsWith('blobs/sha256/') || /^pypi\/[^/]+\/files\//.test(path)
}

/** Reads a content entry to its end, rejecting with DigestMismatchError unless it matches its digest. */
export async function checkContent(
  entry: BundleEntry,
  stream: AsyncIterable<Buffer>,
): Promise<void> {
  const discard = new Writable({ write: (_chunk, _encoding, callback) => callback() })
  await pipeline(stream, createVerifyStream(parseDigest(entry.digest)), discard)
}

/**
 * Reads `source` into `sink`; resolves with the manifest once the whole
 * bundle checked out. `onEntry` hears of each listed entry as it starts.
 */
export async function readBundle(
  source: Readable,
  sink: BundleSink,
  onEntry: (entry: BundleEntry) => void = () => undefined,
): Promise<BundleManifest> {
  const extract = tar.extract()
  const piped = pipeline(source, extract)
  // The loop below sees the same failure through the extractor.
  piped.catch(() => undefined)
  let manifest: BundleManifest | undefined
  let manifestDigest = ''
  const expected = new Map<string, BundleEntry>()
  let ended = false
  try {
    for await (const tarEntry of extract) {
      const { name, type } = tarEntry.header
      const { size } = tarEntry.header
      // tar-stream's entries yield Buffers (typed as unknown).
      const entry = tarEntry as AsyncIterable<Buffer> & { resume(): void }
      if (type === 'directory') {
        entry.resume()
        continue
      }
      if (type !== 'file') throw new BundleInvalidError(`${name}: not a regular file (${type})`)
      if (ended) throw new BundleInvalidError(`${name}: an entry after ${SUMS}`)
      if (!manifest) {
        if (name !== BUNDLE_MANIFEST)
          throw new BundleInvalidError(
            `not a pullthrough bundle: it starts with ${name}, not ${BUNDLE_MANIFEST}`,
          )
        const body = await readSmall(entry, size, MAX_MANIFEST_BYTES, name)
        manifestDigest = digestOf(body)
        manifest = parseManifest(body)
        for (const e of manifest.entries) {
          if (e.path === BUNDLE_MANIFEST || e.path === SUMS || expected.has(e.path))
            throw new BundleInvalidError(`the manifest lists ${e.path} twice`)
          expected.set(e.path, e)
        }
        await sink.manifest(manifest)
        continue
      }
      if (name === SUMS) {
        const missing = [...expected.keys()]
        if (missing.length > 0)
          throw new BundleInvalidError(
            `${missing.length} entries are missing (the first: ${missing[0] ?? ''})`,
          )
        const body = await readSmall(entry, size, MAX_TEXT_ENTRY_BYTES, name)
        const want = sums([{ path: BUNDLE_MANIFEST, digest: manifestDigest }, ...manifest.entries])
        if (body.toString('utf8') !== want)
          throw new BundleInvalidError(`${SUMS} does not match the bundle's manifest`)
        ended = true
        continue
      }
      const listed = expected.get(name)
      if (!listed) throw new BundleInvalidError(`${name}: not in the bundle's manifest (or twice)`)
      expected.delete(name)
      onEntry(listed)
      if (size !== listed.size)
        throw new BundleInvalidError(`${name}: ${size} bytes, the manifest says ${listed.size}`)
      try {
        if (isContentEntry(name)) await sink.content(listed, entry)
        else if (
          digestOf(await readSmall(entry, size, MAX_TEXT_ENTRY_BYTES, name)) !== listed.digest
        )
          throw new DigestMismatchError(listed.digest, 'other', size)
      } catch (error) {
        if (error instanceof DigestMismatchError)
          throw new BundleInvalidError(`${name}: its bytes do not match its digest`, {
            cause: error,
          })
        throw error
      }
    }
  } catch (error) {
    source.destroy()
    if (error instanceof BundleInvalidError) throw error
    if (isTarError(error))
      throw new BundleInvalidError(
        `the bundle is cut short or not a tar file (${(error as Error).message})`,
        {
          cause: error,
        },
      )
    throw error
  }
  await piped
  if (!manifest)
    throw new BundleInvalidError(`not a pullthrough bundle: it has no ${BUNDLE_MANIFEST}`)
  if (!ended) {
    const missing = expected.size
    throw new BundleInvalidError(
      missing > 0
        ? `the bundle ends early: ${missing} entries are missing`
        : `the bundle ends before ${SUMS}`,
    )
  }
  return manifest
}

function parseManifest(body: Buffer): BundleManifest {
  let json: unknown
  try {
    json = JSON.parse(body.toString('utf8'))
  } catch {
    throw new BundleInvalidError(`${BUNDLE_MANIFEST} is not JSON`)
  }
  const parsed = bundleManifestSchema.safeParse(json)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    throw new BundleInvalidError(
      `${BUNDLE_MANIFEST}: ${issue?.path.join('.') ?? ''}: ${issue?.message ?? 'invalid'} (a bundle of another version?)`,
    )
  }
  return parsed.data
}

async function readSmall(
  entry: AsyncIterable<Buffer>,
  size: number,
  max: number,
  name: string,
): Promise<Buffer> {
  if (size > max)
    throw new BundleInvalidError(`${name}: ${size} bytes is more than the ${max} allowed`)
  const chunks: Buffer[] = []
  for await (const chunk of entry) chunks.push(chunk)
  return Buffer.concat(chunks)
}

/** tar-stream's own complaints: truncated input, a bad header. */
function isTarError(error: unknown): boolean {
  return (
    error instanceof Error &&
    /Unexpected end of data|Invalid tar header|Invalid header|size mismatch|Premature close/i.test(
      error.message,
    )
  )
}
