/**
 * Answers of "not there" (a project no index has, a tag no registry has),
 * remembered in memory for a short TTL so a retried typo does not reach the
 * upstreams each time. They never go to the metadata store: any client can
 * make up names, and each would otherwise leave a record behind. The cache
 * holds at most a fixed number of entries; past it the oldest are forgotten,
 * which only means their names are asked upstream again.
 */

/** Negative answers held at most (a key is a name of a few dozen bytes up to ~1 KB). */
export const NEGATIVE_CACHE_MAX_ENTRIES = 10_000

export class NegativeCache {
  /** Key -> expiry (ms since epoch), in insertion order: the first is the oldest. */
  readonly #expiries = new Map<string, number>()

  constructor(
    private readonly now: () => number,
    private readonly maxEntries: number = NEGATIVE_CACHE_MAX_ENTRIES,
  ) {}

  /** True while a negative answer for `key` is remembered. */
  has(key: string): boolean {
    const expiry = this.#expiries.get(key)
    if (expiry === undefined) return false
    if (expiry > this.now()) return true
    this.#expiries.delete(key)
    return false
  }

  /** Remembers a negative answer for `key` for `ttlMs`. */
  add(key: string, ttlMs: number): void {
    if (ttlMs <= 0) return
    this.#expiries.delete(key)
    this.#expiries.set(key, this.now() + ttlMs)
    for (const oldest of this.#expiries.keys()) {
      if (this.#expiries.size <= this.maxEntries) break
      this.#expiries.delete(oldest)
    }
  }

  /** Forgets `key` (the name turned up after all). */
  delete(key: string): void {
    this.#expiries.delete(key)
  }

  /** Forgets every key starting with `prefix` (all views of a name that turned up). */
  deletePrefix(prefix: string): void {
    for (const key of this.#expiries.keys()) if (key.startsWith(prefix)) this.#expiries.delete(key)
  }

  /** Entries held now (expired ones included until they are looked at or pushed out). */
  get size(): number {
    return this.#expiries.size
  }
}
