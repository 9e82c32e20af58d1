/**
 * Reads a byte range of an open blob file in large chunks, into buffers from
 * `buffers`: one given back after an earlier response wrote it, else a new
 * one, which dies young unless given back, so its bytes are reported to the
 * transfer pacer (see scavenge-pacer.ts). The file is closed when the stream
 * ends or is destroyed.
 */
import type { FileHandle } from 'node:fs/promises'
import { Readable } from 'node:stream'
import type { ReadBuffers } from './read-buffers.ts'
import type { ScavengePacer } from './scavenge-pacer.ts'

export class BlobReadStream extends Readable {
  #position: number
  /** Offset just past the last byte to read. */
  readonly #end: number

  /** Bytes [start, end] (inclusive, as fs.createReadStream) of `fh`, or to its end. */
  constructor(
    private readonly fh: FileHandle,
    private readonly pacer: ScavengePacer,
    private readonly buffers: ReadBuffers,
    start: number,
    end: number | undefined,
  ) {
    super({ highWaterMark: buffers.size })
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
          this.push(null)
          return
        }
        this.#position += bytesRead
        if (fresh) this.pacer.moved(bytesRead)
        this.push(bytesRead === buffer.length ? buffer : buffer.subarray(0, bytesRead))
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
