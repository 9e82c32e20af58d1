/**
 * A byte-bounded least-recently-used map of buffers. Holds verified manifests
 * so a busy tag is answered from memory: reading a few KB from disk costs an
 * open, two stats, a read, a close and a hash per request, which is most of
 * the work of serving it.
 */
export class MemoryLru {
  readonly #entries = new Map<string, Buffer>()
  #bytes = 0

  constructor(
    /** Total bytes held at most; an entry larger than this is never held. */
    private readonly maxBytes: number,
  ) {}

  get(key: string): Buffer | undefined {
    const value = this.#entries.get(key)
    if (value === undefined) return undefined
    // Map keeps insertion order: re-inserting marks the entry most recently used.
    this.#entries.delete(key)
    this.#entries.set(key, value)
    return value
  }

  set(key: string, value: Buffer): void {
    this.delete(key)
    if (value.length > this.maxBytes) return
    this.#entries.set(key, value)
    this.#bytes += value.length
    for (const [oldest, held] of this.#entries) {
      if (this.#bytes <= this.maxBytes) break
      this.#entries.delete(oldest)
      this.#bytes -= held.length
    }
  }

  delete(key: string): void {
    const value = this.#entries.get(key)
    if (value === undefined) return
    this.#entries.delete(key)
    this.#bytes -= value.length
  }

  /** Bytes held now. */
  get bytes(): number {
    return this.#bytes
  }
}
