/**
 * Digests currently being read or filled in this process. Eviction skips them,
 * so a blob never disappears under a client that is reading it.
 */
export class InUse {
  readonly #counts = new Map<string, number>()

  /** Marks `digest` as in use; call the returned function once when done. */
  acquire(digest: string): () => void {
    this.#counts.set(digest, (this.#counts.get(digest) ?? 0) + 1)
    let released = false
    return () => {
      if (released) return
      released = true
      const left = (this.#counts.get(digest) ?? 1) - 1
      if (left === 0) this.#counts.delete(digest)
      else this.#counts.set(digest, left)
    }
  }

  has(digest: string): boolean {
    return this.#counts.has(digest)
  }
}
