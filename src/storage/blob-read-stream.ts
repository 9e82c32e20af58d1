/**
 * Reads a byte range of an open blob file in large chunks, into buffers from
 * `buffers`: one given back after an earlier response wrote it, else a new
 * one, which dies young unless given back, so its bytes are reported to the
 * transfer pacer (see scavenge-pacer.ts). The file is closed when the stream
 * ends or is destroyed.
 *
 * With a `verdict`, the chunk that reaches the end of the range is held back
 * until the verdict passes (a check of the whole file, made elsewhere), so a
 * reader never receives all the bytes of content that failed it. Held here,
 * not in a Transform after the stream: each stream stage buffers a chunk of
 * its own, and at 32 concurrent warm GETs that Transform's buffers cost
 * 13-17 MB of RSS (bench/RESULTS.md, 2026-12-05).
 */
import type { FileHandle } from 'node:fs/promises'
import { Readable } from 'node:stream'
import type { ReadBuffers } from './read-buffers.ts'
import type { ScavengePacer } from './scavenge-pacer.ts'

/**
 * Called once the last chunk of the range has been read (or the file ended
 * before it) with the bytes read in all; the stream ends only once it
 * resolves, and is destroyed with its error when it rejects.
 */
export type ReadVerdict = (bytesRead: number) => Promise<void>

export class BlobReadStream extends Readable {
  #position: number
  readonly #start: number
  /** Offset just past the last byte to read. */
  readonly #end: number

  /** Bytes [start, end] (inclusive, as fs.createReadStream) of `fh`, or to its end. */
  constructor(
    private readonly fh: FileHandle,
    private readonly pacer: ScavengePacer,
    private readonly buffers: ReadBuffers,
    start: number,
    end: number | undefined,
    private readonly verdict?: ReadVerdict,
  ) {
    super({ highWaterMark: buffers.size })
    this.#start = start
    this.#position = start
    this.#end = end === undefined ? Number.POSITIVE_INFINITY : end + 1
  }

  override _read(): void {
    const length = Math.min(this.buffers.size, this.#end - this.#position)
    if (length <= 0) {
      this.push(null)
      return
    }
    const { buffer, fresh } = this.buffers.take()
    this.fh.read(buffer, 0, length, this.#position).then(
      ({ bytesRead }) => {
        if (this.destroyed) return
        // The file ended before `end`: a range past the end reads what there is.
        if (bytesRead === 0) {
          this.buffers.give(buffer)
          this.#last(null)
          return
        }
        this.#position += bytesRead
        if (fresh) this.pacer.moved(bytesRead)
        const chunk = bytesRead === buffer.length ? buffer : buffer.subarray(0, bytesRead)
        if (this.#position >= this.#end) this.#last(chunk)
        else this.push(chunk)
      },
      (error: unknown) => this.destroy(error as Error),
    )
  }

  /** Pushes the range's last chunk (null: none left), after the verdict if there is one. */
  #last(chunk: Buffer | null): void {
    if (!this.verdict) {
      this.push(chunk)
      return
    }
    this.verdict(this.#position - this.#start).then(
      () => {
        if (this.destroyed) return
        this.push(chunk)
        if (chunk !== null) this.push(null)
      },
      (error: unknown) => this.destroy(error as Error),
    )
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.fh.close().then(
      () => callback(error),
      (closeError: unknown) => callback(error ?? (closeError as Error)),
    )
  }
}
