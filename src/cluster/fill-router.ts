/**
 * Routes cold fills across replicas: the first replica to claim a blob's fill
 * lease fetches it from upstream; the others stream it from that replica
 * (verifying every byte themselves, as from any mirror). When the owner dies
 * mid-fill, a joiner waits for its lease to lapse and takes the fill over,
 * resuming upstream from the byte it reached; the others follow the new owner.
 */
import type { FillRouter, FillSource } from '../cache/fill.ts'
import type { Metrics } from '../observability/metrics.ts'
import type { FillLeases } from './fill-leases.ts'
import type { PeerSources } from './peer-sources.ts'

export function clusterFillRouter(
  leases: FillLeases,
  peers: PeerSources,
  metrics: Pick<Metrics, 'replicaFills'>,
): FillRouter {
  return {
    async route(digest, source, signal) {
      const claim = await leases.claim(digest)
      if (claim.kind === 'own') {
        metrics.replicaFills.inc({ role: 'owner' })
        return { release: claim.release }
      }
      metrics.replicaFills.inc({ role: 'joiner' })
      let takenOver: (() => void) | undefined
      const follow = (url: string): FillSource => ({
        ...peers.source(url, digest),
        // Loaded once the owner cannot give the bytes (dead, or its fill failed).
        alternatives: async () => {
          const next = await leases.takeOver(digest, url, signal)
          if (next.kind === 'peer') return [peers.source(next.url, digest), source]
          metrics.replicaFills.inc({ role: 'takeover' })
          takenOver = next.release
          return [source]
        },
      })
      return { source: follow(claim.url), release: () => takenOver?.() }
    },
  }
}
