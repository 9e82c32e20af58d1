/**
 * Buffers for reading stored blobs, used again once the client has them.
 *
 * A warm GET reads its blob in READ_HIGH_WATER_MARK chunks; with a fresh
 * buffer per chunk, concurrent GETs keep hundreds of megabytes of dead
 * buffers for the garbage collector (bench/RESULTS.md, 2026-12-04: warm
 * serving cost 2-3.5 CPU seconds per GB at c=8, GC the largest part). Here a
 * chunk's buffer goes back to a free list when the HTTP layer's write of it
 * has completed (the socket no longer needs its bytes), and the next read
 * takes it from there.
 *
 * A buffer is handed out by `take` and comes back by `give` at most once:
 * `give` of a buffer not lent (a foreign one, a view of it given twice) does
 * nothing, so no two readers can ever hold the same buffer. A chunk that is
 * never given back (a consumer other than an HTTP response, a write that
 * failed) is garbage like any other.
 */

/**
 * Read size for serving. Measured here with 32 clients of one warm 512 MiB blob:
 * 256 KiB 1050 MB/s and 193 MB peak RSS, 512 KiB 1580-1640 MB/s and 190-200 MB,
 * 1 MiB 1430-1460 MB/s and 295 MB (the 64 KiB default is far slower still).
 */
export const READ_HIGH_WATER_MARK = 512 * 1024

/** Free buffers kept at most (each READ_HIGH_WATER_MARK: 32 MiB in all). */
export const MAX_FREE_READ_BUFFERS = 64

export class ReadBuffers {
  readonly #free: Buffer[] = []
  /** Backing stores lent out and not given back yet. */
  readonly #lent = new WeakSet<ArrayBufferLike>()

  constructor(
    /** The size of every buffer. */
    readonly size: number,
    private readonly maxFree = MAX_FREE_READ_BUFFERS,
  ) {}

  /** A buffer of `size` bytes; `fresh` when newly allocated (not one given back). */
  take(): { readonly buffer: Buffer; readonly fresh: boolean } {
    const reused = this.#free.pop()
    const buffer = reused ?? Buffer.allocUnsafeSlow(this.size)
    this.#lent.add(buffer.buffer)
    return { buffer, fresh: reused === undefined }
  }

  /** `chunk` (a buffer taken here, or a view of one) is no longer needed by anyone. */
  give(chunk: unknown): void {
    if (!(chunk instanceof Uint8Array)) return
    const store = chunk.buffer
    if (!this.#lent.has(store)) return
    this.#lent.delete(store)
    if (this.#free.length < this.maxFree) this.#free.push(Buffer.from(store, 0, this.size))
  }

  /** Free buffers held now. */
  get free(): number {
    return this.#free.length
  }
}
