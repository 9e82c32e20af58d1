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
   * Up to `length` bytes from `position` (which must be >= start); empty at the
   * end. Within one chunk this is a slice of it; across chunks, a copy: one
   * large socket write costs far less than one per network-sized chunk.
   */
  read(position: number, length: number): Buffer {
    if (position < this.start) throw new RangeError('position before the window')
    const parts: Buffer[] = []
    let size = 0
    let offset = this.start
    for (const chunk of this.#chunks) {
      if (size >= length) break
      const next = offset + chunk.length
      if (position < next) {
        const from = Math.max(0, position - offset)
        const part = chunk.subarray(from, from + length - size)
        parts.push(part)
        size += part.length
      }
      offset = next
    }
    return parts.length === 1 ? (parts[0] ?? Buffer.alloc(0)) : Buffer.concat(parts, size)
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
