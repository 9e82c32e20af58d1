/**
 * Which configured registry a request is for (DESIGN.md, "Docker registry
 * choice"): containerd's `?ns=<registry>` first, then a first path segment equal
 * to a registry name (`/v2/ghcr.io/org/app/...`), else the default registry.
 * On docker.io a one-segment name means `library/<name>`.
 */

export interface RegistryRef {
  readonly name: string
  readonly default: boolean
}

export interface Routed<R extends RegistryRef> {
  readonly registry: R
  /** The repository name as the upstream knows it. */
  readonly repository: string
}

/** Docker Hub's official images live under library/. */
const DOCKER_HUB = 'docker.io'

export function routeRegistry<R extends RegistryRef>(
  registries: readonly R[],
  name: string,
  ns: string | undefined,
): Routed<R> | undefined {
  let registry: R | undefined
  let repository = name
  if (ns !== undefined) {
    registry = registries.find((r) => r.name === ns)
    if (!registry) return undefined
  } else {
    const [first, ...rest] = name.split('/')
    const prefixed = rest.length > 0 ? registries.find((r) => r.name === first) : undefined
    if (prefixed) {
      registry = prefixed
      repository = rest.join('/')
    } else {
      registry = registries.find((r) => r.default)
    }
  }
  if (!registry) return undefined
  if (registry.name === DOCKER_HUB && !repository.includes('/'))
    repository = `library/${repository}`
  return { registry, repository }
}
