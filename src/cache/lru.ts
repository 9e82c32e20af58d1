/**
 * A least-recently-used map bounded by the total weight of its values: bytes
 * for verified manifests (a busy tag is answered from memory instead of an
 * open, two stats, a read, a close and a hash per request), a count for parsed
 * index pages (a file request need not read and parse its project's page).
 */
export class Lru<V> {
  readonly #entries = new Map<string, V>()
  #weight = 0
  /** The most recently used key, if known: asked again, it needs no re-insertion. */
  #newest: string | undefined

  constructor(
    /** Total weight held at most; an entry heavier than this is never held. */
    private readonly maxWeight: number,
    private readonly weigh: (value: V) => number,
  ) {}

  get(key: string): V | undefined {
    const value = this.#entries.get(key)
    if (value === undefined || key === this.#newest) return value
    // Map keeps insertion order: re-inserting marks the entry most recently used.
    // (Deleting a map's last entry also shrinks it, an allocation, so a key
    // asked again and again is left where it is.)
    this.#entries.delete(key)
    this.#entries.set(key, value)
    this.#newest = key
    return value
  }

  set(key: string, value: V): void {
    this.delete(key)
    if (this.weigh(value) > this.maxWeight) return
    this.#entries.set(key, value)
    this.#newest = key
    this.#weight += this.weigh(value)
    for (const [oldest, held] of this.#entries) {
      if (this.#weight <= this.maxWeight) break
      this.#entries.delete(oldest)
      if (oldest === this.#newest) this.#newest = undefined
      this.#weight -= this.weigh(held)
    }
  }

  delete(key: string): void {
    const value = this.#entries.get(key)
    if (value === undefined) return
    this.#entries.delete(key)
    if (key === this.#newest) this.#newest = undefined
    this.#weight -= this.weigh(value)
  }

  /** Total weight held now. */
  get weight(): number {
    return this.#weight
  }
}
