/**
 * Another replica's running fill, asked like an upstream mirror: a fill that
 * joins it streams from the owner's internal endpoint and resumes elsewhere
 * (with Range) when that replica dies, exactly as after a mirror's cut.
 */
import type { FillSource } from '../cache/fill-sources.ts'
import type { PoolConfig } from '../config/schema.ts'
import { UpstreamPool, type PoolDeps } from '../upstream/pool.ts'

/** Where the internal endpoint serves blobs: `<this><digest>`. */
export const INTERNAL_BLOBS_PATH = '/-/internal/blobs/'

/** Limits for asking a replica: it is on the same network and has the bytes or will soon. */
const PEER_TIMEOUTS: PoolConfig['timeouts'] = {
  connect: 2_000,
  headers: 30_000,
  bodyIdle: 30_000,
  document: 30_000,
}

/** Replicas remembered at most; pods that come and go get new addresses. */
const MAX_PEERS = 64

export class PeerSources {
  /** One pool per replica, so its breaker and statistics outlive one fill. */
  readonly #pools = new Map<string, UpstreamPool>()

  constructor(
    private readonly secret: string,
    private readonly deps: PoolDeps,
  ) {}

  /** The replica at `url` (its cluster.advertise) as the source of `digest`. */
  source(url: string, digest: string): FillSource {
    return {
      pool: this.#pool(url),
      path: `${INTERNAL_BLOBS_PATH}${digest}`,
      headers: { authorization: `Bearer ${this.secret}` },
    }
  }

  #pool(url: string): UpstreamPool {
    let pool = this.#pools.get(url)
    if (!pool) {
      pool = new UpstreamPool(
        {
          name: 'replicas',
          upstreams: [{ url }],
          selection: 'ordered',
          timeouts: PEER_TIMEOUTS,
          // One try: when the owner does not answer, the fill waits for its lease instead.
          retry: { attempts: 1, backoffBase: 100, backoffMax: 1_000, budget: 5_000 },
          breaker: { failures: 5, cooldown: 10_000 },
        },
        this.deps,
      )
      this.#pools.set(url, pool)
      if (this.#pools.size > MAX_PEERS) {
        const [oldest, old] = this.#pools.entries().next().value ?? []
        if (oldest !== undefined) this.#pools.delete(oldest)
        void old?.close()
      }
    }
    return pool
  }

  async close(): Promise<void> {
    await Promise.all([...this.#pools.values()].map((pool) => pool.close()))
    this.#pools.clear()
  }
}
