/**
 * A client's view of a running fill: reads the attempt's bytes from its own
 * position as they arrive, pausing when it catches up and when its consumer
 * applies backpressure. One chunk in memory at a time: a slow consumer costs
 * nothing but its own socket buffer, and never slows the fill.
 */
import { Readable } from 'node:stream'
import { READ_HIGH_WATER_MARK } from '../storage/blob-store.ts'
import { transferPacer } from '../storage/scavenge-pacer.ts'
import type { Attempt } from './attempt.ts'

/** Read size, the same as for serving from the store (see READ_HIGH_WATER_MARK). */
export const READ_CHUNK_BYTES = READ_HIGH_WATER_MARK

/** What a reader needs of the fill it follows (cache/fill.ts). */
export interface FillView {
  /** Total size once an upstream said it. */
  readonly size: number | undefined
  /** The whole blob hashed to its digest: its last byte may go out. */
  readonly verified: boolean
  readonly failure: Error | undefined
  /** The current attempt. */
  readonly attempt: Attempt | undefined
  /** How far a reader that wants bytes up to `end` (exclusive) may read now. */
  readableLimit(end: number | undefined): number
  /** Resolves at the next change a reader may care about. */
  progress(): Promise<void>
  /** Called after each chunk a reader sent, so the attempt can free what all readers passed. */
  consumed(): void
}

export class TailReader extends Readable {
  /** Bytes pushed to the consumer so far. */
  bytesSent = 0
  #pos: number
  readonly #end: number | undefined
  #attempt: Attempt | undefined
  #pumping = false

  constructor(
    private readonly fill: FillView,
    start: number,
    end: number | undefined,
  ) {
    super({ highWaterMark: READ_CHUNK_BYTES })
    this.#pos = start
    this.#end = end
  }

  /** The attempt this reader reads from. */
  get attempt(): Attempt | undefined {
    return this.#attempt
  }

  /** Next byte this reader will read. */
  get position(): number {
    return this.#pos
  }

  override _read(): void {
    this.#pump().catch((error: unknown) => this.destroy(error as Error))
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.#attempt?.release()
    this.#attempt = undefined
    callback(error)
  }

  async #pump(): Promise<void> {
    if (this.#pumping) return
    this.#pumping = true
    try {
      for (;;) {
        if (this.destroyed) return
        const fill = this.fill
        if (fill.failure) {
          this.destroy(fill.failure)
          return
        }
        const end = this.#end ?? (fill.verified ? fill.size : undefined)
        // A range that stops short of the blob's last byte never needs the verdict to end.
        const shortRange =
          this.#end !== undefined && fill.size !== undefined && this.#end < fill.size
        if ((fill.verified || shortRange) && end !== undefined && this.#pos >= end) {
          this.push(null)
          return
        }
        const limit = fill.readableLimit(this.#end)
        const attempt = this.#pos < limit ? this.#bind() : undefined
        const chunk = attempt
          ? await attempt.read(this.#pos, Math.min(READ_CHUNK_BYTES, limit - this.#pos))
          : undefined
        // The consumer may have gone away while we read.
        // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition
        if (this.destroyed) return
        if (!chunk || chunk.length === 0) {
          await fill.progress()
          continue
        }
        this.#pos += chunk.length
        this.bytesSent += chunk.length
        // Chunks read back from the temp file are new buffers that die once sent
        // (views of the fill's chunks are not, and cost the pacer nothing).
        transferPacer().moved(chunk.length)
        fill.consumed()
        if (!this.push(chunk)) return
      }
    } finally {
      this.#pumping = false
    }
  }

  /** Binds to the fill's current attempt; a reader that has sent nothing follows the fill to a new one. */
  #bind(): Attempt | undefined {
    const current = this.fill.attempt
    if (current !== this.#attempt && this.bytesSent === 0) {
      this.#attempt?.release()
      current?.retain()
      this.#attempt = current
    }
    return this.#attempt
  }
}
