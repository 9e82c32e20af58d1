/**
 * The content-addressed blob store:
 *
 *   blobs/sha256/<first two hex>/<64 hex>   committed, verified content
 *   tmp/                                    writes in progress; emptied at every start
 *   verified/<first two hex>/<64 hex>       identity of the file when last verified
 *                                           (verifyOnRead: changed; see VerifiedFiles)
 *
 * A blob is written to tmp/ while it is hashed, fsynced, compared with its
 * expected digest and only then renamed into blobs/ (and the directory fsynced),
 * so a crash at any point leaves either nothing or a complete verified blob.
 * Digests are validated before they become paths: no input can name a file
 * outside the store.
 */
import * as nodeFs from 'node:fs/promises'
import { fstatSync, type BigIntStats } from 'node:fs'
import { dirname, join } from 'node:path'
import { Readable } from 'node:stream'
import { pipeInto } from '../pipe-into.ts'
import {
  createSha256,
  digestOf,
  digestHex,
  hashToDigest,
  isDigest,
  parseDigest,
  type Digest,
} from './digest.ts'
import {
  BlobChangedError,
  BlobNotFoundError,
  BlobTooLargeError,
  DigestMismatchError,
  InvalidRangeError,
  StorageWriteError,
  errorCode,
} from './errors.ts'
import { BlobReadStream, type ReadVerdict } from './blob-read-stream.ts'
import { READ_HIGH_WATER_MARK, ReadBuffers } from './read-buffers.ts'
import {
  type BlobCheck,
  type BlobStat,
  type BlobStorage,
  type OpenedBlob,
  type ReadOptions,
} from './blob-storage.ts'
import { Spool } from './spool.ts'
import { SpooledBlobStore } from './spooled-store.ts'
import type { FileHasher } from './file-hasher.ts'
import { contentIdentity, fileIdentity, VerifiedFiles } from './verified-files.ts'
import { transferPacer, type ScavengePacer } from './scavenge-pacer.ts'
import { createVerifyStream } from './verify-stream.ts'

export type { BlobCheck, BlobStat, BlobStorage, ReadOptions } from './blob-storage.ts'
export { BlobWriter } from './blob-writer.ts'
export { READ_HIGH_WATER_MARK } from './read-buffers.ts'
export { STALE_TEMP_MS } from './spool.ts'

/** Read size of a scrub check: large reads from disk, small enough to pace finely. */
const CHECK_CHUNK_BYTES = 1024 * 1024

/** The filesystem calls the store makes; tests pass a recording wrapper around node:fs/promises. */
export type BlobStoreFs = Pick<
  typeof nodeFs,
  'open' | 'rename' | 'stat' | 'unlink' | 'mkdir' | 'readdir' | 'rm' | 'utimes'
>

/** This thread's read buffers, shared by its stores (one free list, one memory bound). */
const threadReadBuffers = new ReadBuffers(READ_HIGH_WATER_MARK)

/**
 * Smallest blob a verified read hashes on a worker thread. Below it, hashing
 * inline costs less than the round trip (a 1 KB wheel: 0.06 ms inline against
 * about 0.6 ms through the worker).
 */
export const WORKER_HASH_MIN_BYTES = 1024 * 1024

const TMP = 'tmp'
const VERIFIED = 'verified'
const BLOBS = join('blobs', 'sha256')

export class BlobStore extends SpooledBlobStore implements BlobStorage {
  readonly #blobsDir: string

  private constructor(
    readonly root: string,
    private readonly fs: BlobStoreFs,
    spool: Spool,
    private readonly hasher: FileHasher | undefined,
    private readonly pacer: ScavengePacer,
    private readonly verified: VerifiedFiles | undefined,
    /** The buffers reads fill; give a chunk back here once it is written out. */
    readonly readBuffers: ReadBuffers,
  ) {
    super(spool)
    this.#blobsDir = join(root, BLOBS)
  }

  protected async publish(tempPath: string, digest: Digest): Promise<void> {
    await renameInto(this.fs, this.#blobsDir, tempPath, digest)
    // Its bytes were hashed on their way in: the committed file counts as verified.
    if (this.verified) await this.#trust(digest)
  }

  /** Records the identity of `digest`'s committed file as verified (after rename: it moves the ctime). */
  async #trust(digest: Digest): Promise<void> {
    const stat = await this.fs.stat(this.#path(digest), { bigint: true }).catch(() => undefined)
    if (stat) await this.verified?.record(digest, contentIdentity(stat))
  }

  /**
   * Opens (creating if needed) the store at `root` and removes leftovers from tmp/.
   * With a `hasher`, verified reads hash on its worker threads instead of inline.
   * With `shared` (replicas on one volume) only temp files untouched for
   * STALE_TEMP_MS are removed: the others are other replicas' downloads.
   * Reads and writes report their bytes to `pacer` (default: the thread's transferPacer).
   * With `trustVerified`, a verified read of a file verified since it last
   * changed (by a fill, a whole read or a scrub, in this process or one before
   * it: records under verified/) is not hashed again (storage.verifyOnRead:
   * changed; see VerifiedFiles).
   */
  static async open(
    root: string,
    options: {
      fs?: BlobStoreFs
      hasher?: FileHasher
      shared?: boolean
      now?: () => number
      pacer?: ScavengePacer
      trustVerified?: boolean
      readBuffers?: ReadBuffers
    } = {},
  ): Promise<BlobStore> {
    const fs = options.fs ?? nodeFs
    const pacer = options.pacer ?? transferPacer()
    await fs.mkdir(join(root, BLOBS), { recursive: true })
    const spool = await Spool.open(join(root, TMP), {
      fs,
      pacer,
      ...(options.shared !== undefined ? { shared: options.shared } : {}),
      ...(options.now ? { now: options.now } : {}),
    })
    return new BlobStore(
      root,
      fs,
      spool,
      options.hasher,
      pacer,
      options.trustVerified === true ? new VerifiedFiles(join(root, VERIFIED)) : undefined,
      options.readBuffers ?? threadReadBuffers,
    )
  }

  /** Size and modification time of a committed blob, or undefined. */
  async stat(digest: string): Promise<BlobStat | undefined> {
    const path = this.#path(parseDigest(digest))
    try {
      const stat = await this.fs.stat(path)
      return { size: stat.size, mtimeMs: stat.mtimeMs }
    } catch (error) {
      if (isNotFound(error)) return undefined
      throw error
    }
  }

  async has(digest: string): Promise<boolean> {
    return (await this.stat(digest)) !== undefined
  }

  /**
   * Reads a small committed blob (a manifest) whole and checks it against its
   * digest: DigestMismatchError when it rotted, BlobNotFoundError when absent,
   * BlobTooLargeError over `maxBytes`, checked before the bytes are read.
   */
  async readSmall(digest: string, maxBytes: number): Promise<Buffer> {
    const valid = parseDigest(digest)
    const fh = await this.#open(valid)
    try {
      const { size } = await fh.stat()
      if (size > maxBytes) throw new BlobTooLargeError(valid, size, maxBytes)
      const data = await fh.readFile()
      const actual = digestOf(data)
      if (actual !== valid) throw new DigestMismatchError(valid, actual, data.length)
      return data
    } finally {
      await fh.close().catch(() => undefined)
    }
  }

  /**
   * Up to `maxBytes` from the start of a committed blob, unverified (to tell
   * what it is, never to serve); undefined when it is not on disk.
   */
  async readHead(digest: string, maxBytes: number): Promise<Buffer | undefined> {
    let fh: nodeFs.FileHandle
    try {
      fh = await this.#open(parseDigest(digest))
    } catch (error) {
      if (error instanceof BlobNotFoundError) return undefined
      throw error
    }
    try {
      const buffer = Buffer.allocUnsafe(maxBytes)
      let length = 0
      while (length < maxBytes) {
        const { bytesRead } = await fh.read(buffer, length, maxBytes - length, length)
        if (bytesRead === 0) break
        length += bytesRead
      }
      return buffer.subarray(0, length)
    } finally {
      await fh.close().catch(() => undefined)
    }
  }

  /**
   * Re-hashes a committed blob (the scrub), awaiting `pace(bytes)` after each
   * chunk so the caller bounds the rate. `corrupt` only when the very file
   * read is still the one under the blob's name (one replaced meanwhile, by a
   * new fill, is `changed`); `missing` when there is none.
   */
  async check(
    digest: string,
    pace: (bytes: number) => Promise<void>,
  ): Promise<{ readonly result: BlobCheck; readonly bytes: number }> {
    const valid = parseDigest(digest)
    let fh: nodeFs.FileHandle
    try {
      fh = await this.#open(valid)
    } catch (error) {
      if (error instanceof BlobNotFoundError) return { result: 'missing', bytes: 0 }
      throw error
    }
    try {
      const identity = this.verified ? contentIdentity(await fh.stat({ bigint: true })) : undefined
      const hash = createSha256()
      const buffer = Buffer.allocUnsafe(CHECK_CHUNK_BYTES)
      let bytes = 0
      for (;;) {
        const { bytesRead } = await fh.read(buffer, 0, buffer.length, bytes)
        if (bytesRead === 0) break
        hash.update(buffer.subarray(0, bytesRead))
        bytes += bytesRead
        await pace(bytesRead)
      }
      if (hashToDigest(hash) === valid) {
        if (identity !== undefined) await this.verified?.record(valid, identity)
        return { result: 'ok', bytes }
      }
      await this.verified?.forget(valid)
      const read = fileIdentity(await fh.stat({ bigint: true }))
      const now = await this.fs.stat(this.#path(valid), { bigint: true }).catch(() => undefined)
      return { result: now && fileIdentity(now) === read ? 'corrupt' : 'changed', bytes }
    } finally {
      await fh.close().catch(() => undefined)
    }
  }

  /**
   * Opens a committed blob to serve it (see BlobStorage.open); undefined when
   * absent. A whole read that fits one read buffer is read in one call and,
   * with `verify`, hashed before it is returned: for a small file, the
   * stream stages and the file calls of every further read cost more than its
   * bytes (bench/RESULTS.md, 2026-12-05 "late evening").
   */
  async open(digest: string, options: ReadOptions = {}): Promise<OpenedBlob | undefined> {
    const valid = parseDigest(digest)
    const { start = 0, end } = options
    if (!isValidRange(options.start, end)) throw new InvalidRangeError(options.start, end)
    let fh: nodeFs.FileHandle
    try {
      fh = await this.#open(valid)
    } catch (error) {
      if (error instanceof BlobNotFoundError) return undefined
      throw error
    }
    try {
      // On the descriptor just opened the inode is in memory: a thread-pool round
      // trip costs more than the call (bench/RESULTS.md, 2026-12-05 "late evening").
      const stat = fstatSync(fh.fd, { bigint: true })
      const size = Number(stat.size)
      if (start > 0 || (end !== undefined && end < size - 1) || size > this.readBuffers.size)
        return { size, body: await this.#read(valid, fh, options, stat) }
      const body = await this.#readWhole(valid, fh, stat, options.verify === true)
      // Its bytes are in memory: the response need not wait for the close.
      void fh.close().catch(() => undefined)
      return { size, body }
    } catch (error) {
      await fh.close().catch(() => undefined)
      throw error
    }
  }

  /** The whole blob in one buffer, checked against its digest when `verify`. */
  async #readWhole(
    digest: Digest,
    fh: nodeFs.FileHandle,
    stat: BigIntStats,
    verify: boolean,
  ): Promise<Buffer> {
    const size = Number(stat.size)
    const body = Buffer.allocUnsafe(size)
    let read = 0
    while (read < size) {
      const { bytesRead } = await fh.read(body, read, size - read, read)
      if (bytesRead === 0) throw new BlobChangedError(digest)
      read += bytesRead
    }
    this.pacer.moved(size)
    if (!verify) return body
    // Taken before hashing: a change during or after the hash makes it differ next time.
    const identity = this.verified ? contentIdentity(stat) : undefined
    if (identity !== undefined && (await this.verified?.matches(digest, identity))) return body
    const actual = digestOf(body)
    if (actual !== digest) throw new DigestMismatchError(digest, actual, size)
    if (identity !== undefined) void this.verified?.record(digest, identity)
    return body
  }

  /**
   * Opens a committed blob for reading; rejects with BlobNotFoundError before
   * streaming if absent. With `verify`, a read that covers the whole blob errors
   * with DigestMismatchError instead of delivering its last chunk when the content
   * does not match (with a hasher, BlobChangedError if the file was replaced meanwhile).
   */
  async createReadStream(digest: string, options: ReadOptions = {}): Promise<Readable> {
    const valid = parseDigest(digest)
    const { start, end } = options
    if (!isValidRange(start, end)) throw new InvalidRangeError(start, end)
    const fh = await this.#open(valid)
    try {
      return await this.#read(valid, fh, options)
    } catch (error) {
      await fh.close().catch(() => undefined)
      throw error
    }
  }

  /** A stream of `fh`; `known`, its stat when the caller took one already. */
  async #read(
    digest: Digest,
    fh: nodeFs.FileHandle,
    options: ReadOptions,
    known?: BigIntStats,
  ): Promise<Readable> {
    const { start = 0, end } = options
    if (end !== undefined && end < start) {
      // An empty range (say, `end: size - 1` of an empty blob): fs would throw on it.
      await fh.close()
      return Readable.from([], { objectMode: false })
    }
    // A range from 0 to the last byte or beyond is the whole blob and is verified like one.
    const stat =
      options.verify === true && start === 0
        ? (known ?? (await fh.stat({ bigint: true })))
        : undefined
    const verified = stat !== undefined && (end === undefined || end >= Number(stat.size) - 1)
    const reader = (last: number | undefined, verdict?: ReadVerdict) =>
      new BlobReadStream(fh, this.pacer, this.readBuffers, start, last, verdict)
    if (!verified) return reader(end)
    const size = Number(stat.size)
    // Taken before hashing: a change during or after the hash makes it differ next time.
    const identity = this.verified ? contentIdentity(stat) : undefined
    if (identity !== undefined && (await this.verified?.matches(digest, identity)))
      return reader(end)
    let verify: Readable
    if (this.hasher && size >= WORKER_HASH_MIN_BYTES) {
      // The reader holds its last chunk back for the worker's verdict (blob-read-stream.ts).
      const check = this.#hashOnWorker(this.hasher, digest, stat)
      // Observed by the verdict; a reader gone before its end must not leave it unhandled.
      check.catch(() => undefined)
      verify = reader(size - 1, async (bytesRead) => {
        await check
        // The file shrank under the reader: what it served is not the content checked.
        if (bytesRead !== size) throw new BlobChangedError(digest)
      })
    } else {
      // A small blob hashes inline faster than a worker thread answers.
      // Errors reach the reader through the transform; destroying it closes the file.
      verify = pipeInto(reader(end), createVerifyStream(digest))
    }
    // The last chunk passes only once the digest matched: 'end' means verified.
    if (identity !== undefined)
      verify.once('end', () => void this.verified?.record(digest, identity))
    return verify
  }

  /**
   * Hashes the blob on a worker thread, which opens it by path: the check holds
   * only if the worker hashed the very content this reader has open (`served`,
   * its stat at open). A shared job that began before an in-place change hashed
   * other bytes, so the file is hashed again; a second difference means the file
   * changed under the reader.
   */
  async #hashOnWorker(hasher: FileHasher, digest: Digest, served: BigIntStats): Promise<void> {
    const path = this.#path(digest)
    const expected = contentIdentity(served)
    let hashed = await hasher.hash(path)
    if (hashed.identity !== expected) hashed = await hasher.hash(path, { join: false })
    if (hashed.identity !== expected) throw new BlobChangedError(digest)
    if (hashed.digest !== digest) throw new DigestMismatchError(digest, hashed.digest, hashed.size)
  }

  /** Removes a committed blob; false when it was not there. */
  async delete(digest: string): Promise<boolean> {
    const valid = parseDigest(digest)
    const path = this.#path(valid)
    await this.verified?.forget(valid)
    try {
      await this.fs.unlink(path)
      return true
    } catch (error) {
      if (isNotFound(error)) return false
      throw error
    }
  }

  /** Every committed blob. */
  async *list(): AsyncIterable<{ digest: Digest; size: number; mtimeMs: number }> {
    const base = join(this.root, BLOBS)
    for (const fan of (await this.fs.readdir(base)).sort()) {
      if (!/^[a-f0-9]{2}$/.test(fan)) continue
      let names: string[]
      try {
        names = await this.fs.readdir(join(base, fan))
      } catch (error) {
        // Removed while we walked (an operator cleaning up): nothing in it to list.
        if (isNotFound(error)) continue
        throw error
      }
      for (const name of names.sort()) {
        const digest = `sha256:${name}`
        if (!isDigest(digest) || !name.startsWith(fan)) continue
        const stat = await this.stat(digest)
        if (stat) yield { digest, ...stat }
      }
    }
  }

  /** Proves the store can take writes now (for /readyz): write, fsync and remove a probe file. */
  async checkWritable(): Promise<void> {
    return this.spool.checkWritable()
  }

  /** Opens a committed blob's file; BlobNotFoundError when there is none. */
  async #open(digest: Digest): Promise<nodeFs.FileHandle> {
    try {
      return await this.fs.open(this.#path(digest), 'r')
    } catch (error) {
      if (isNotFound(error)) throw new BlobNotFoundError(digest)
      throw error
    }
  }

  #path(digest: Digest): string {
    return blobPath(join(this.root, BLOBS), digest)
  }
}

/** Renames a verified temp file into blobs/ and fsyncs the directories that changed. */
async function renameInto(
  fs: BlobStoreFs,
  blobsDir: string,
  tempPath: string,
  digest: Digest,
): Promise<void> {
  const target = blobPath(blobsDir, digest)
  const dir = dirname(target)
  try {
    const created = await fs.mkdir(dir, { recursive: true })
    // Concurrent writers of one digest each rename identical content; rename is atomic.
    await fs.rename(tempPath, target)
    await syncDir(fs, dir)
    // A new fan-out directory is durable only once its parent's entry is.
    if (created !== undefined) await syncDir(fs, blobsDir)
  } catch (error) {
    throw new StorageWriteError(`cannot commit a blob (${errorCode(error)})`, { cause: error })
  }
}

function blobPath(blobsDir: string, digest: Digest): string {
  const hex = digestHex(digest)
  return join(blobsDir, hex.slice(0, 2), hex)
}

async function syncDir(fs: BlobStoreFs, dir: string): Promise<void> {
  const dh = await fs.open(dir, 'r')
  try {
    await dh.sync()
  } finally {
    await dh.close()
  }
}

/** Offsets fs can read by: a non-negative integer start; an integer end (below start reads nothing). */
function isValidRange(start: number | undefined, end: number | undefined): boolean {
  return (
    (start === undefined || (Number.isSafeInteger(start) && start >= 0)) &&
    (end === undefined || Number.isSafeInteger(end))
  )
}

function isNotFound(error: unknown): boolean {
  return (error as { code?: string } | null)?.code === 'ENOENT'
}
