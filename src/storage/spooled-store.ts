/**
 * What every blob store shares: blobs in progress are written and hashed in a
 * Spool (tmp/ under storage.path), and a writer's commit calls the store's
 * `publish` once the content matched its digest.
 */
import { pipeline } from 'node:stream/promises'
import { STAGING_TOUCH_MS, type BlobStaging } from './blob-staging.ts'
import type { BlobWriter, Publisher } from './blob-writer.ts'
import { parseDigest, type Digest } from './digest.ts'
import type { Spool } from './spool.ts'

export abstract class SpooledBlobStore {
  /** The publisher of writers that need no other: publish once verified. */
  readonly #publisher: Publisher = { publish: (tempPath, digest) => this.publish(tempPath, digest) }

  protected constructor(protected readonly spool: Spool) {}

  /** Makes a verified temp file the committed blob `digest` (rename, upload). */
  protected abstract publish(tempPath: string, digest: Digest): Promise<void>

  /**
   * The publisher of one writer, whose content is expected to hash to
   * `expected` when the caller knows it; by default, `publish` at commit.
   */
  protected publisherFor(_tempPath: string, _expected: Digest | undefined): Publisher {
    return this.#publisher
  }

  /** Every committed blob. */
  abstract list(): AsyncIterable<{ digest: Digest; size: number; mtimeMs: number }>

  /**
   * A writer to a new temp file; commit it under its digest or abort it.
   * `expected`, the digest the content should have, lets a store start
   * publishing before the commit (S3 uploads parts while the blob is written).
   */
  async createWriter(expected?: string): Promise<BlobWriter> {
    const digest = expected === undefined ? undefined : parseDigest(expected)
    return this.spool.createWriter((tempPath) => this.publisherFor(tempPath, digest))
  }

  /**
   * A directory in the spool for blobs written and verified now and committed
   * together later (an import), or thrown away together; its directory is
   * touched every `touchMs` while it lives.
   */
  async createStaging(touchMs = STAGING_TOUCH_MS): Promise<BlobStaging> {
    return this.spool.createStaging(
      (tempPath, expected) => this.publisherFor(tempPath, expected),
      touchMs,
    )
  }

  /**
   * Stores the content of `source` under `digest`, if and only if it hashes to it.
   * On any failure (source error, abort, mismatch, disk) the temp file is removed
   * and the error propagates; write faults arrive as StorageWriteError.
   */
  async put(
    digest: string,
    source: AsyncIterable<Uint8Array> | NodeJS.ReadableStream,
    options: { signal?: AbortSignal } = {},
  ): Promise<{ size: number }> {
    const expected = parseDigest(digest)
    const writer = await this.createWriter(expected)
    try {
      await pipeline(source, writer, options.signal ? { signal: options.signal } : {})
    } catch (error) {
      await writer.abort().catch(() => undefined)
      throw error
    }
    return writer.commit(expected)
  }

  /**
   * Removes temp files untouched for STALE_TEMP_MS (downloads of a process that
   * died) and returns how many; with `dryRun`, only counts them. Live
   * downloads write continuously.
   */
  async removeStaleTemps(now = Date.now(), options: { dryRun?: boolean } = {}): Promise<number> {
    return this.spool.removeStaleTemps(now, options)
  }

  /** Sum of the sizes of every committed blob. */
  async totalSize(): Promise<number> {
    let total = 0
    for await (const blob of this.list()) total += blob.size
    return total
  }
}
