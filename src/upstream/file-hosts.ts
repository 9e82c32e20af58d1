/**
 * Where a package index's files may be fetched from: each upstream's own
 * origin (with that upstream's credentials) and the origins listed in the
 * index's `fileHosts` (without credentials: they never leave their own host).
 * One single-mirror pool per origin, so a file URL is fetched from exactly
 * the host the index named, with the index's timeouts, retries and breaker.
 * Any other origin has no pool: pullthrough is not an open proxy.
 */
import type { IndexConfig } from '../config/schema.ts'
import { UpstreamPool, type MirrorSnapshot, type PoolDeps } from './pool.ts'

/** A file URL as a transfer source: the pool of its origin and its path there. */
export interface FileLocation {
  readonly pool: UpstreamPool
  /** The URL's path and query, relative to the origin. */
  readonly path: string
}

export class FileHosts {
  readonly #pools = new Map<string, UpstreamPool>()

  constructor(index: IndexConfig, deps: PoolDeps) {
    const pool = (origin: string, upstream: IndexConfig['upstreams'][number] | undefined) =>
      new UpstreamPool(
        {
          ...index,
          upstreams: [
            {
              url: `${origin}/`,
              ...(upstream?.username !== undefined ? { username: upstream.username } : {}),
              ...(upstream?.password !== undefined ? { password: upstream.password } : {}),
              ...(upstream?.redirectHosts !== undefined
                ? { redirectHosts: upstream.redirectHosts }
                : {}),
            },
          ],
        },
        deps,
      )
    for (const upstream of index.upstreams) {
      const origin = new URL(upstream.url).origin
      if (!this.#pools.has(origin)) this.#pools.set(origin, pool(origin, upstream))
    }
    for (const host of index.fileHosts) {
      const origin = new URL(host).origin
      if (!this.#pools.has(origin)) this.#pools.set(origin, pool(origin, undefined))
    }
  }
  /** The health of each file host (for the API). */
  snapshot(): MirrorSnapshot[] {
    return [...this.#pools.values()].flatMap((pool) => pool.snapshot())
  }

  /** True when files may be fetched from this URL's origin. */
  allows(url: string): boolean {
    return this.locate(url) !== undefined
  }

  /** The pool and path for a file URL; undefined for an origin that is not allowed. */
  locate(url: string): FileLocation | undefined {
    let parsed: URL
    try {
      parsed = new URL(url)
    } catch {
      return undefined
    }
    if (parsed.username !== '' || parsed.password !== '') return undefined
    const pool = this.#pools.get(parsed.origin)
    return pool ? { pool, path: `${parsed.pathname.slice(1)}${parsed.search}` } : undefined
  }

  async close(): Promise<void> {
    await Promise.all([...this.#pools.values()].map((p) => p.close()))
  }
}
