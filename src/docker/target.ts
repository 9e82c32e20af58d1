/** What a validated Docker pull request is for: the registry, the upstream name, its remote. */
import type { DockerRemote } from './remote.ts'
import type { RegistryRef } from './routing.ts'

export interface RegistryEntry extends RegistryRef {
  /** How long a tag's manifest is served without asking the upstream (ms). */
  readonly tagTTL: number
  /** A tag the upstreams answer 404 for keeps being served from the cache (`keep`), or goes (`drop`). */
  readonly onUpstreamNotFound: 'keep' | 'drop'
}

export interface DockerTarget {
  readonly registry: RegistryEntry
  /** The repository as the upstream knows it (`library/busybox`). */
  readonly repository: string
  /** The repository as the client named it, for links back to pullthrough. */
  readonly clientName: string
  /** The repository's upstream conversations. */
  readonly remote: DockerRemote
}
