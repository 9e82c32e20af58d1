/**
 * Where the bytes of one fill attempt live while clients read them.
 *
 * DiskGeneration: the normal case. Bytes go to a BlobWriter's temp file (hashed
 * as written); readers read the file by position, at their own pace.
 *
 * MemoryGeneration: the disk could not be written (full, read-only). Bytes are
 * hashed in memory and kept in a window that readers consume; the window is
 * bounded, so the transfer waits for the slowest reader instead of growing
 * without limit. Nothing is stored; clients still get their bytes.
 */
import { open, type FileHandle } from 'node:fs/promises'
import type { BlobStore, BlobWriter } from '../storage/blob-store.ts'
import { createSha256, hashToDigest, parseDigest } from '../storage/digest.ts'
import { DigestMismatchError } from '../storage/errors.ts'
import type { Mirror } from '../upstream/mirror.ts'

/** Bytes a pass-through fill may hold ahead of its slowest reader. */
export const PASSTHROUGH_WINDOW_BYTES = 16 * 1024 * 1024

export interface Generation {
  readonly kind: 'disk' | 'memory'
  /** Bytes readers may read (written to the file, or received into memory). */
  readonly available: number
  /** Mirrors that sent bytes of this attempt (blamed together on a mismatch). */
  readonly contributors: Set<Mirror>
  /** Reads up to `length` bytes at `position`; fewer (or none) when not yet there. */
  read(position: number, length: number): Promise<Buffer>
  /** Adds bytes; resolves when more may be sent (backpressure), calls `onAvailable` as bytes become readable. */
  append(data: Buffer): Promise<void>
  /** Waits until every appended byte is readable; rejects with the first write error. */
  settle(): Promise<void>
  /** Verifies (and for disk, commits) the content; returns its size. */
  finish(digest: string): Promise<number>
  /** Checks the complete content against `digest` without making it durable (clients may finish first). */
  verify(digest: string): Promise<void>
  /** Throws the attempt away. */
  discard(): Promise<void>
  /** A reader joined or left (memory generations trim their window by it). */
  retain(): void
  release(): void
  /** Called when a reader consumed up to `position` (memory generations free what all readers passed). */
  consumed(readerPositions: Iterable<number>): void
}

export class DiskGeneration implements Generation {
  readonly kind = 'disk'
  readonly contributors = new Set<Mirror>()
  available = 0
  #refs = 1
  #pending = 0
  #writeError: Error | undefined
  #settled: (() => void) | undefined

  private constructor(
    private readonly writer: BlobWriter,
    private readonly fh: FileHandle,
    private readonly onAvailable: () => void,
  ) {
    // A failed write (ENOSPC, EROFS) destroys the writer; keep the error for append/settle.
    writer.on('error', (error: Error) => {
      this.#writeError ??= error
      this.#wakeDrain?.()
    })
  }

  #wakeDrain: (() => void) | undefined

  static async create(blobs: BlobStore, onAvailable: () => void): Promise<DiskGeneration> {
    const writer = await blobs.createWriter()
    try {
      return new DiskGeneration(writer, await open(writer.tempPath, 'r'), onAvailable)
    } catch (error) {
      await writer.abort()
      throw error
    }
  }

  async read(position: number, length: number): Promise<Buffer> {
    const size = Math.min(length, this.available - position)
    if (size <= 0) return Buffer.alloc(0)
    const buffer = Buffer.allocUnsafe(size)
    const { bytesRead } = await this.fh.read(buffer, 0, size, position)
    return bytesRead === size ? buffer : buffer.subarray(0, bytesRead)
  }

  async append(data: Buffer): Promise<void> {
    if (this.#writeError) throw this.#writeError
    this.#pending++
    const more = this.writer.write(data, (error) => {
      this.#pending--
      if (error) this.#writeError ??= error
      else {
        this.available += data.length
        this.onAvailable()
      }
      if (this.#pending === 0) this.#settled?.()
    })
    if (!more && !this.#failed()) {
      await new Promise<void>((resolve) => {
        this.#wakeDrain = resolve
        this.writer.once('drain', resolve)
      })
      this.#wakeDrain = undefined
    }
    const failed = this.#failed()
    if (failed) throw failed
  }

  /** The first write error; a call, so checks after an await are not narrowed away. */
  #failed(): Error | undefined {
    return this.#writeError
  }

  async settle(): Promise<void> {
    if (this.#pending > 0) {
      await new Promise<void>((resolve) => {
        this.#settled = resolve
      })
    }
    if (this.#writeError) throw this.#writeError
  }

  async finish(digest: string): Promise<number> {
    await this.settle()
    return (await this.writer.commit(digest)).size
  }

  async verify(digest: string): Promise<void> {
    await this.settle()
    const actual = this.writer.digestSoFar()
    if (actual !== parseDigest(digest))
      throw new DigestMismatchError(digest, actual, this.available)
  }

  async discard(): Promise<void> {
    await this.writer.abort()
  }

  retain(): void {
    this.#refs++
  }

  release(): void {
    // The file handle stays open while any reader may still read it (even after commit's rename).
    if (--this.#refs === 0) this.fh.close().catch(() => undefined)
  }

  consumed(): void {
    // Readers read the file at their own pace; nothing to free.
  }
}

export class MemoryGeneration implements Generation {
  readonly kind = 'memory'
  readonly contributors = new Set<Mirror>()
  available = 0
  readonly #hash = createSha256()
  /** Received chunks not yet consumed by every reader, from byte `#windowStart`. */
  readonly #chunks: Buffer[] = []
  #windowStart = 0
  #refs = 1
  #roomWaiter: (() => void) | undefined

  constructor(private readonly onAvailable: () => void) {}

  async read(position: number, length: number): Promise<Buffer> {
    if (position < this.#windowStart) throw new Error('pass-through reader fell behind its window')
    let skip = position - this.#windowStart
    const parts: Buffer[] = []
    let size = 0
    for (const chunk of this.#chunks) {
      if (skip >= chunk.length) {
        skip -= chunk.length
        continue
      }
      const part = chunk.subarray(skip, skip + length - size)
      skip = 0
      parts.push(part)
      size += part.length
      if (size >= length) break
    }
    return Promise.resolve(
      parts.length === 1 ? (parts[0] ?? Buffer.alloc(0)) : Buffer.concat(parts),
    )
  }

  async append(data: Buffer): Promise<void> {
    this.#hash.update(data)
    this.#chunks.push(data)
    this.available += data.length
    this.onAvailable()
    // The slowest reader sets the pace: wait while the window is full.
    while (this.available - this.#windowStart > PASSTHROUGH_WINDOW_BYTES && this.#refs > 1) {
      await new Promise<void>((resolve) => {
        this.#roomWaiter = resolve
      })
    }
  }

  async settle(): Promise<void> {
    // Appends are synchronous: nothing is ever pending.
  }

  async verify(digest: string): Promise<void> {
    await this.finish(digest)
  }

  async finish(digest: string): Promise<number> {
    const actual = hashToDigest(this.#hash.copy())
    if (actual !== parseDigest(digest))
      throw new DigestMismatchError(digest, actual, this.available)
    return Promise.resolve(this.available)
  }

  async discard(): Promise<void> {
    this.#chunks.length = 0
    return Promise.resolve()
  }

  retain(): void {
    this.#refs++
  }

  release(): void {
    this.#refs--
    this.#wakeWriter()
  }

  consumed(readerPositions: Iterable<number>): void {
    let slowest = this.available
    for (const position of readerPositions) slowest = Math.min(slowest, position)
    while (this.#chunks.length > 0) {
      const first = this.#chunks[0]
      if (!first || this.#windowStart + first.length > slowest) break
      this.#windowStart += first.length
      this.#chunks.shift()
    }
    this.#wakeWriter()
  }

  #wakeWriter(): void {
    const waiter = this.#roomWaiter
    this.#roomWaiter = undefined
    waiter?.()
  }
}
