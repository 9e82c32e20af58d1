/**
 * Where the bytes of one fill attempt live while clients read them.
 *
 * DiskAttempt: the normal case. Bytes go to a BlobWriter's temp file
 * (hashed as written) in batched writes, and become readable once written: a
 * disk that fails never leaves a client holding bytes it cannot complete. The
 * newest written bytes stay in memory, so readers at the head of the transfer
 * never read the file back; readers further behind read it by position, at
 * their own pace.
 *
 * MemoryAttempt: the disk could not be written (full, read-only). Bytes are
 * hashed in memory and kept in a window that readers consume. The fill paces
 * the transfer by `held`, so the window never holds more than
 * PASSTHROUGH_WINDOW_BYTES ahead of the slowest reader, and stops the transfer
 * once no reader is left. Nothing is stored; clients still get their bytes.
 */
import { open, type FileHandle } from 'node:fs/promises'
import type { BlobStorage } from '../storage/blob-storage.ts'
import type { BlobWriter } from '../storage/blob-writer.ts'
import type { ReadBuffers } from '../storage/read-buffers.ts'
import { createSha256, hashToDigest, parseDigest } from '../storage/digest.ts'
import { DigestMismatchError } from '../storage/errors.ts'
import type { Mirror } from '../upstream/mirror.ts'
import { ChunkWindow } from './chunk-window.ts'

/** Bytes a pass-through fill may hold ahead of its slowest reader. */
export const PASSTHROUGH_WINDOW_BYTES = 16 * 1024 * 1024

/**
 * A disk write takes what arrived in one turn of the event loop, and starts at
 * once when this many bytes wait. Measured here (150 MiB to ext4): 64 KiB
 * writes, one per network chunk, cost 134 ms of CPU; 1 MiB writes 45 ms.
 */
export const WRITE_BATCH_BYTES = 512 * 1024

/** Written bytes kept in memory for readers at the head of a fill. */
export const RECENT_WINDOW_BYTES = 1024 * 1024

/** Received bytes waiting for a write at which the transfer waits for the disk. */
export const MAX_UNWRITTEN_BYTES = 1024 * 1024

export interface Attempt {
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
  /** A reader joined or left (memory attempts trim their window by it). */
  retain(): void
  release(): void
  /** Called when a reader consumed up to `position`: frees what all readers passed. */
  consumed(readerPositions: Iterable<number>): void
}

export class DiskAttempt implements Attempt {
  readonly kind = 'disk'
  readonly contributors = new Set<Mirror>()
  /** Bytes the temp file holds: readers never see a byte before it is written. */
  available = 0
  #refs = 1
  /** Written bytes not yet passed by every reader, at most RECENT_WINDOW_BYTES: readers at the head read them here. */
  readonly #recent = new ChunkWindow()
  /** Received bytes no write has taken yet. */
  #unwritten: Buffer[] = []
  #unwrittenBytes = 0
  #writing = false
  #writeScheduled = false
  #writeError: Error | undefined
  /** Called when a write completes or fails. */
  #wakeWaiters: (() => void)[] = []

  private constructor(
    private readonly writer: BlobWriter,
    private readonly fh: FileHandle,
    private readonly onAvailable: () => void,
    /** Where reads of the temp file take their buffers (given back once a response wrote them). */
    private readonly readBuffers: ReadBuffers,
  ) {
    // A failed write (ENOSPC, EROFS) destroys the writer; keep the error for append/settle.
    writer.on('error', (error: Error) => this.#onWritten([], 0, error))
  }

  /** An attempt at the blob `digest`, written through `blobs`. */
  static async create(
    blobs: BlobStorage,
    onAvailable: () => void,
    digest?: string,
  ): Promise<DiskAttempt> {
    const writer = await blobs.createWriter(digest)
    try {
      return new DiskAttempt(
        writer,
        await open(writer.tempPath, 'r'),
        onAvailable,
        blobs.readBuffers,
      )
    } catch (error) {
      await writer.abort()
      throw error
    }
  }

  async read(position: number, length: number): Promise<Buffer> {
    const size = Math.min(length, this.available - position)
    if (size <= 0) return Buffer.alloc(0)
    if (position >= this.#recent.start) return this.#recent.read(position, size)
    // A reader behind the head (many clients of one fill) reads the file into a
    // buffer used again once its response wrote it: 50 clients of a 200 MiB
    // fill read 10 GB back, and fresh buffers for all of it cost GCs.
    const { buffer } = this.readBuffers.take()
    const fromFile = Math.min(size, this.#recent.start - position, buffer.length)
    const { bytesRead } = await this.fh
      .read(buffer, 0, fromFile, position)
      .catch((error: unknown) => {
        this.readBuffers.give(buffer)
        throw error
      })
    if (bytesRead > 0) return buffer.subarray(0, bytesRead)
    this.readBuffers.give(buffer)
    return Buffer.alloc(0)
  }

  async append(data: Buffer): Promise<void> {
    this.#throwIfFailed()
    this.#unwritten.push(data)
    this.#unwrittenBytes += data.length
    this.#writeSoon()
    // The disk sets the pace once it falls behind.
    while (this.#unwrittenBytes >= MAX_UNWRITTEN_BYTES && this.#startWrite()) {
      await this.#nextWrite()
    }
    this.#throwIfFailed()
  }

  async settle(): Promise<void> {
    while (this.#startWrite()) await this.#nextWrite()
    this.#throwIfFailed()
  }

  /**
   * Writes what waits: at once when a batch is full, else at the end of this
   * turn of the event loop, so the network reads that land together (up to
   * dozens of chunks) go to disk together.
   */
  #writeSoon(): void {
    if (this.#unwrittenBytes >= WRITE_BATCH_BYTES) {
      this.#startWrite()
      return
    }
    if (this.#unwrittenBytes === 0 || this.#writeScheduled || this.#writing) return
    this.#writeScheduled = true
    setImmediate(() => {
      this.#writeScheduled = false
      this.#startWrite()
    })
  }

  /**
   * Hands every unwritten byte to one write unless one is in flight. True while
   * a write is in flight (the caller may wait for it), false when all is written
   * or writing failed.
   */
  #startWrite(): boolean {
    if (this.#writeError) return false
    if (this.#writing) return true
    if (this.#unwrittenBytes === 0) return false
    const chunks = this.#unwritten
    const bytes = this.#unwrittenBytes
    this.#unwritten = []
    this.#unwrittenBytes = 0
    this.#writing = true
    // Corked, the chunks reach the writer as one writev.
    this.writer.cork()
    chunks.forEach((chunk, i) => {
      if (i < chunks.length - 1) this.writer.write(chunk)
      else this.writer.write(chunk, (error) => this.#onWritten(chunks, bytes, error ?? undefined))
    })
    this.writer.uncork()
    return true
  }

  #onWritten(chunks: readonly Buffer[], bytes: number, error: Error | undefined): void {
    this.#writing = false
    if (error) this.#writeError ??= error
    else if (!this.#writeError) {
      for (const chunk of chunks) this.#recent.push(chunk)
      this.available += bytes
      this.#recent.dropBefore(this.available - RECENT_WINDOW_BYTES)
      this.onAvailable()
      // What arrived meanwhile goes next, in one write (group commit).
      this.#writeSoon()
    }
    const waiters = this.#wakeWaiters
    this.#wakeWaiters = []
    for (const wake of waiters) wake()
  }

  #nextWrite(): Promise<void> {
    return new Promise<void>((resolve) => this.#wakeWaiters.push(resolve))
  }

  #throwIfFailed(): void {
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
    this.#unwritten = []
    this.#unwrittenBytes = 0
    await this.writer.abort()
  }

  retain(): void {
    this.#refs++
  }

  release(): void {
    // The file handle stays open while any reader may still read it (even after commit's rename).
    if (--this.#refs === 0) {
      this.#recent.clear()
      this.fh.close().catch(() => undefined)
    }
  }

  consumed(readerPositions: Iterable<number>): void {
    // Bytes every reader has passed are in the file: drop them now, so buffers die
    // young (held longer, they get promoted and cost major GCs).
    let slowest = this.available
    for (const position of readerPositions) slowest = Math.min(slowest, position)
    this.#recent.dropBefore(slowest)
  }
}

export class MemoryAttempt implements Attempt {
  readonly kind = 'memory'
  readonly contributors = new Set<Mirror>()
  available = 0
  readonly #hash = createSha256()
  /** Received bytes not yet passed by every reader. */
  readonly #window = new ChunkWindow()

  constructor(private readonly onAvailable: () => void) {}

  /** Bytes held in memory: received and not yet passed by every reader. */
  get held(): number {
    return this.available - this.#window.start
  }

  async read(position: number, length: number): Promise<Buffer> {
    if (position < this.#window.start) throw new Error('pass-through reader fell behind its window')
    return Promise.resolve(this.#window.read(position, length))
  }

  async append(data: Buffer): Promise<void> {
    // No waiting here: the fill paces the transfer by `held`, and can stop it while it waits.
    this.#hash.update(data)
    this.#window.push(data)
    this.available += data.length
    this.onAvailable()
    return Promise.resolve()
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
    this.#window.clear()
    return Promise.resolve()
  }

  retain(): void {
    // Nothing to keep open: the window lives as long as the attempt.
  }

  release(): void {
    // Nothing to close; readers that leave report it through consumed().
  }

  consumed(readerPositions: Iterable<number>): void {
    let slowest = this.available
    for (const position of readerPositions) slowest = Math.min(slowest, position)
    this.#window.dropBefore(slowest)
  }
}
