/**
 * The writer of a blob in progress: bytes go to a local temp file while they
 * are hashed; only content that hashed to its digest is published.
 */
import type * as nodeFs from 'node:fs/promises'
import type { FileHandle } from 'node:fs/promises'
import { Writable } from 'node:stream'
import { createSha256, hashToDigest, parseDigest, type Digest } from './digest.ts'
import {
  BlobWriterClosedError,
  DigestMismatchError,
  StorageWriteError,
  errorCode,
} from './errors.ts'
import { READ_HIGH_WATER_MARK } from './read-buffers.ts'
import type { ScavengePacer } from './scavenge-pacer.ts'

/** How a writer's verified temp file becomes the committed blob. */
export interface Publisher {
  /** Makes the verified temp file the committed blob `digest` (the temp file may be gone after). */
  publish(tempPath: string, digest: Digest): Promise<void>
  /** Told the bytes written so far after each write, so a store may start early (S3 parts). */
  written?(bytes: number): void
  /** The write was given up (abort, mismatch): undo what `written` started. */
  discard?(): Promise<void>
}

/**
 * Writes a temp file while hashing it. `commit(digest)` makes it a blob if the
 * content matches; `abort()` throws it away. Honours backpressure like any
 * Writable. Created by a store's createWriter (through its Spool).
 */
export class BlobWriter extends Writable {
  readonly #hash = createSha256()
  #bytesWritten = 0
  #state: 'open' | 'committing' | 'sealed' | 'done' = 'open'
  #closing: Promise<void> | undefined
  /** The digest a seal verified. */
  #sealed: Digest | undefined

  constructor(
    /** Where the bytes are while they are written (readers may open it to follow the write). */
    readonly tempPath: string,
    private readonly fh: FileHandle,
    private readonly fs: Pick<typeof nodeFs, 'rm'>,
    /** Makes the verified temp file the blob (fs: rename into blobs/; S3: upload). */
    private readonly publisher: Publisher,
    private readonly pacer: ScavengePacer,
  ) {
    super({ highWaterMark: READ_HIGH_WATER_MARK })
  }

  /** Bytes written to the temp file (and hashed) so far. */
  get bytesWritten(): number {
    return this.#bytesWritten
  }

  override _write(
    chunk: Buffer,
    _encoding: BufferEncoding,
    callback: (error?: Error | null) => void,
  ): void {
    this.#append([chunk]).then(
      () => callback(),
      (error: unknown) => callback(error as Error),
    )
  }

  /** Buffered (or corked) chunks go out in one writev, without being copied together first. */
  override _writev(chunks: { chunk: Buffer }[], callback: (error?: Error | null) => void): void {
    this.#append(chunks.map((c) => c.chunk)).then(
      () => callback(),
      (error: unknown) => callback(error as Error),
    )
  }

  /** fsync before 'finish', so a finished writer's bytes are on disk. */
  override _final(callback: (error?: Error | null) => void): void {
    this.fh.sync().then(
      () => callback(),
      (error: unknown) => {
        callback(
          new StorageWriteError(`cannot fsync a temp file (${errorCode(error)})`, { cause: error }),
        )
      },
    )
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    // Runs after 'finish' too (autoDestroy); the temp file stays until commit or abort.
    void this.#close().then(() => callback(error))
  }

  async #append(chunks: readonly Buffer[]): Promise<void> {
    try {
      let rest = chunks
      while (rest.length > 0) {
        const { bytesWritten } = await this.fh.writev(rest)
        const next = afterBytes(rest, bytesWritten)
        if (bytesWritten === 0 && next.length > 0) throw new Error('a write made no progress')
        rest = next
      }
    } catch (error) {
      throw new StorageWriteError(`cannot write a temp file (${errorCode(error)})`, {
        cause: error,
      })
    }
    let bytes = 0
    for (const chunk of chunks) {
      this.#hash.update(chunk)
      bytes += chunk.length
    }
    this.#bytesWritten += bytes
    this.publisher.written?.(this.#bytesWritten)
    // What is written arrived in buffers (socket reads) that die once written and read.
    this.pacer.moved(bytes)
  }

  /** Digest of the bytes written so far (the hash keeps going). */
  digestSoFar(): string {
    return `sha256:${this.#hash.copy().digest('hex')}`
  }

  /**
   * Ends the write (if not ended yet), fsyncs, and publishes the blob if the
   * content hashes to `expected`; otherwise removes the temp file and rejects with
   * DigestMismatchError. `expected` is validated before anything touches the disk
   * (an invalid one leaves the writer open).
   */
  async commit(expected: string): Promise<{ size: number }> {
    const digest = parseDigest(expected)
    if (this.#state !== 'sealed' || this.#sealed !== digest) await this.seal(digest)
    this.#state = 'committing'
    try {
      await this.#publish(digest)
      this.#state = 'done'
      return { size: this.#bytesWritten }
    } catch (error) {
      await this.abort().catch(() => undefined)
      throw error
    }
  }

  /**
   * Ends the write, fsyncs and checks the content against `expected`, leaving
   * the verified temp file for a later commit(expected), which then only
   * publishes it; on a mismatch removes it and rejects with DigestMismatchError.
   */
  async seal(expected: string): Promise<{ size: number }> {
    const digest = parseDigest(expected)
    if (this.#state !== 'open') throw new BlobWriterClosedError()
    this.#state = 'committing'
    try {
      await this.#finish()
      await this.#close()
      const actual = hashToDigest(this.#hash)
      if (actual !== digest) throw new DigestMismatchError(digest, actual, this.#bytesWritten)
      this.#state = 'sealed'
      this.#sealed = digest
      return { size: this.#bytesWritten }
    } catch (error) {
      await this.abort().catch(() => undefined)
      throw error
    }
  }

  /** Closes and removes the temp file. Safe to call more than once. */
  async abort(): Promise<void> {
    this.#state = 'done'
    if (!this.destroyed) this.destroy()
    await this.#close()
    await this.fs.rm(this.tempPath, { force: true })
    await this.publisher.discard?.()
  }

  /** Resolves once every byte is written and fsynced (see _final). */
  async #finish(): Promise<void> {
    if (this.errored) throw this.errored
    if (this.writableFinished) return
    await new Promise<void>((resolve, reject) => {
      // A failed fsync in _final reaches the end callback first and is emitted as
      // 'error' after it: the listener stays so that emission is never unhandled.
      this.once('error', reject)
      // The callback gets the stream's error, or ERR_STREAM_DESTROYED if it was destroyed.
      this.end((error?: Error | null) => (error ? reject(error) : resolve()))
    })
  }

  async #publish(digest: Digest): Promise<void> {
    try {
      await this.publisher.publish(this.tempPath, digest)
    } catch (error) {
      if (error instanceof StorageWriteError) throw error
      throw new StorageWriteError(`cannot commit a blob (${errorCode(error)})`, { cause: error })
    }
  }

  #close(): Promise<void> {
    // FileHandle.close waits for the handle's pending writes. A close error after a
    // successful fsync loses nothing, and before one the file is discarded anyway.
    this.#closing ??= this.fh.close().catch(() => undefined)
    return this.#closing
  }
}

/** What remains of `chunks` after its first `bytes` bytes (a short write). */
function afterBytes(chunks: readonly Buffer[], bytes: number): readonly Buffer[] {
  let skip = bytes
  let i = 0
  while (i < chunks.length && skip >= (chunks[i]?.length ?? 0)) skip -= chunks[i++]?.length ?? 0
  const rest = chunks.slice(i)
  const first = rest[0]
  if (first && skip > 0) rest[0] = first.subarray(skip)
  return rest
}
