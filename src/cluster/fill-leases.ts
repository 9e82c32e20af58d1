/**
 * Which replica fetches a cold blob from upstream: the lease `fill:<digest>`
 * names its holder's internal URL, is renewed while the fill runs and is
 * released when it ends. A holder that dies stops renewing; its lease lapses
 * within FILL_LEASE_TTL_MS and a replica that was streaming from it takes the
 * fill over. When the metadata store does not answer, each replica fetches
 * alone, as it would without a cluster.
 */
import { randomBytes } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Logger } from '../observability/logger.ts'
import type { MetadataStore } from '../metadata/store.ts'

/** A dead owner is noticed this long after its last renewal at most. */
export const FILL_LEASE_TTL_MS = 5_000
/** The owner renews this often, so two renewals can fail before the lease lapses. */
export const FILL_LEASE_RENEW_MS = 1_500
/** How often a replica whose owner failed asks whether the lease lapsed. */
export const TAKEOVER_POLL_MS = 200
/** Longest wait for a failed owner's lease to lapse before fetching alone. */
export const TAKEOVER_WAIT_MS = 2 * FILL_LEASE_TTL_MS

export type Claim =
  | { readonly kind: 'own'; readonly release: () => void }
  | { readonly kind: 'peer'; readonly url: string }

type LeaseStore = Pick<MetadataStore, 'acquireLease' | 'releaseLease' | 'leaseHolder'>

export class FillLeases {
  /** This replica's holder name: its internal URL, then a random part for this process's life. */
  readonly #owner: string

  constructor(
    private readonly metadata: LeaseStore,
    /** The internal URL the other replicas reach this one at (cluster.advertise). */
    self: string,
    private readonly logger: Logger,
  ) {
    this.#owner = `${new URL(self).origin} ${randomBytes(6).toString('hex')}`
  }

  /** Takes the fill of `digest`, or names the replica that has it. */
  async claim(digest: string): Promise<Claim> {
    const name = leaseName(digest)
    try {
      // Bounded: a second pass only when the holder's lease lapsed between the two calls.
      for (let pass = 0; pass < 2; pass++) {
        if (await this.metadata.acquireLease(name, this.#owner, { ttlMs: FILL_LEASE_TTL_MS }))
          return this.#held(name)
        const holder = await this.metadata.leaseHolder(name)
        if (holder !== undefined) return { kind: 'peer', url: holder.split(' ')[0] ?? holder }
      }
    } catch (error) {
      this.logger.warn(
        { digest, reason: (error as Error).message },
        'cannot reach the metadata store; fetching this blob without asking the other replicas',
      )
    }
    return { kind: 'own', release: () => undefined }
  }

  /**
   * After the replica at `failed` could not give the bytes: waits until its
   * lease lapses, then takes the fill or names whoever did first. Past
   * TAKEOVER_WAIT_MS (a replica alive but not serving) this one fetches alone.
   */
  async takeOver(digest: string, failed: string, signal: AbortSignal): Promise<Claim> {
    const deadline = performance.now() + TAKEOVER_WAIT_MS
    // Bounded by the deadline.
    for (;;) {
      const claim = await this.claim(digest)
      if (claim.kind === 'own' || claim.url !== failed) return claim
      if (performance.now() >= deadline) {
        this.logger.warn(
          { digest, owner: failed },
          'the replica fetching this blob does not serve it; fetching it here',
        )
        return { kind: 'own', release: () => undefined }
      }
      await sleep(TAKEOVER_POLL_MS, undefined, { signal })
    }
  }

  #held(name: string): Claim {
    const renew = setInterval(() => {
      this.metadata
        .acquireLease(name, this.#owner, { ttlMs: FILL_LEASE_TTL_MS })
        .then((held) => {
          if (!held)
            this.logger.warn(
              { lease: name },
              'lost a fill lease; another replica may fetch the same blob',
            )
        })
        .catch(() => undefined)
    }, FILL_LEASE_RENEW_MS)
    renew.unref()
    let released = false
    return {
      kind: 'own',
      release: () => {
        if (released) return
        released = true
        clearInterval(renew)
        void this.metadata.releaseLease(name, this.#owner).catch(() => undefined)
      },
    }
  }
}

function leaseName(digest: string): string {
  return `fill:${digest}`
}
