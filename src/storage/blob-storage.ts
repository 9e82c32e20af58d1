/**
 * What the cache, bundles, scrub, gc, eviction and statistics need of a blob
 * store: the contract the filesystem store (blob-store.ts) and the S3 store
 * (s3-store.ts) both keep, held to by one test suite (test/storage/contract.ts).
 *
 * Both write blobs in progress to a local Spool (tmp/ under storage.path) and
 * make a blob visible under its digest only once its content hashed to it.
 */
import type { Readable } from 'node:stream'
import type { BlobStaging } from './blob-staging.ts'
import type { BlobWriter } from './blob-writer.ts'
import type { Digest } from './digest.ts'
import type { ReadBuffers } from './read-buffers.ts'

/** What re-hashing a stored blob found (BlobStorage.check). */
export type BlobCheck = 'ok' | 'corrupt' | 'missing' | 'changed'

export interface BlobStat {
  readonly size: number
  readonly mtimeMs: number
}

export interface ReadOptions {
  /** Hash the bytes on the way out and fail the stream on a mismatch (reads of the whole blob only). */
  readonly verify?: boolean
  readonly start?: number
  /** Last byte to read, inclusive (as in fs.createReadStream); below `start` reads nothing. */
  readonly end?: number
}

/** A committed blob opened to be served. */
export interface OpenedBlob {
  readonly size: number
  /**
   * Its bytes. Whole, in memory, when the read covers the blob and it fits one
   * read (`readBuffers.size`): already verified when asked, so a mismatch
   * rejects the open before any byte is served. Otherwise a stream, verified
   * as createReadStream verifies.
   */
  readonly body: Buffer | Readable
}

export interface BlobStorage {
  /** The buffers reads fill; give a chunk back here once it is written out. */
  readonly readBuffers: ReadBuffers
  /** Size and modification time of a committed blob, or undefined. */
  stat(digest: string): Promise<BlobStat | undefined>
  has(digest: string): Promise<boolean>
  /**
   * A writer to a new temp file; commit it under its digest or abort it.
   * Pass the digest the content should have when it is known (lets S3 upload parts early).
   */
  createWriter(expected?: string): Promise<BlobWriter>
  /** Blobs written and verified now, committed (or thrown away) together later. */
  createStaging(): Promise<BlobStaging>
  /** Stores `source` under `digest` if and only if it hashes to it. */
  put(
    digest: string,
    source: AsyncIterable<Uint8Array> | NodeJS.ReadableStream,
    options?: { signal?: AbortSignal },
  ): Promise<{ size: number }>
  /** A small blob read whole and verified; BlobTooLargeError over `maxBytes`. */
  readSmall(digest: string, maxBytes: number): Promise<Buffer>
  /** Up to `maxBytes` from the start, unverified (to tell what it is); undefined when absent. */
  readHead(digest: string, maxBytes: number): Promise<Buffer | undefined>
  /** Re-hashes a committed blob (the scrub), awaiting `pace(bytes)` after each chunk. */
  check(
    digest: string,
    pace: (bytes: number) => Promise<void>,
  ): Promise<{ readonly result: BlobCheck; readonly bytes: number }>
  /** Opens a committed blob to serve it, with its size; undefined when absent. */
  open(digest: string, options?: ReadOptions): Promise<OpenedBlob | undefined>
  /** Opens a committed blob for reading; BlobNotFoundError before streaming when absent. */
  createReadStream(digest: string, options?: ReadOptions): Promise<Readable>
  /** Removes a committed blob; false when it was not there. */
  delete(digest: string): Promise<boolean>
  /** Every committed blob, in digest order. */
  list(): AsyncIterable<{ digest: Digest; size: number; mtimeMs: number }>
  /** Sum of the sizes of every committed blob. */
  totalSize(): Promise<number>
  /** Removes (or with `dryRun` counts) abandoned temp files. */
  removeStaleTemps(now?: number, options?: { dryRun?: boolean }): Promise<number>
  /** Proves the store can take writes now (for /readyz). */
  checkWritable(): Promise<void>
}
