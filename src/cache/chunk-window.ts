/**
 * A run of consecutive bytes [start, end) of a transfer, held in memory as the
 * chunks they arrived in, so a reader at the head of a transfer costs no
 * system call.
 */
export class ChunkWindow {
  readonly #chunks: Buffer[] = []
  /** Offset of the first byte held. */
  start = 0
  /** Offset just past the last byte held. */
  end = 0

  push(chunk: Buffer): void {
    if (chunk.length === 0) return
    this.#chunks.push(chunk)
    this.end += chunk.length
  }

  /**
   * Up to `length` bytes from `position` (which must be >= start), never past
   * the end of the chunk that holds `position`; empty at the end. Always a
   * view of that chunk, never a copy: copying network chunks together into
   * 512 KiB reads doubled the short-lived buffers of a fill, which on Node 24
   * start full GCs (see storage/scavenge-pacer.ts), and the copies alone took
   * 0.25 s (Node 20) to 0.6 s (Node 24) of CPU per 200 MiB GET.
   */
  read(position: number, length: number): Buffer {
    if (position < this.start) throw new RangeError('position before the window')
    let offset = this.start
    for (const chunk of this.#chunks) {
      const next = offset + chunk.length
      if (position < next) {
        const from = position - offset
        return chunk.subarray(from, from + Math.min(length, chunk.length - from))
      }
      offset = next
    }
    return Buffer.alloc(0)
  }

  /** Drops the chunks that end at or before `position`. */
  dropBefore(position: number): void {
    let first = this.#chunks[0]
    while (first && this.start + first.length <= position) {
      this.start += first.length
      this.#chunks.shift()
      first = this.#chunks[0]
    }
  }

  clear(): void {
    this.#chunks.length = 0
    this.start = this.end
  }
}
