/**
 * Who may pull what. Two independent rule sets:
 *
 * - `proxy`: what may be fetched at all. Every rule whose registry or index
 *   matches applies: a name any `deny` matches is refused, and a name must
 *   match the `allow` list of each rule that has one. It holds for everyone,
 *   signed in or not, and whether auth is on or not.
 * - `access` (auth on only): the first rule whose registry/index and
 *   repository/project globs match the name decides, by its users, groups and
 *   `anonymous`; a name no rule matches is open to all when its registry or
 *   index has `anonymous: pull`, else to no one.
 */
import picomatch from 'picomatch'
import type {
  AccessRuleConfig,
  AnonymousAccess,
  AuthConfig,
  ProxyRuleConfig,
} from '../config/schema.ts'
import type { Identity } from './identity.ts'

export type Protocol = 'docker' | 'pypi'

/** A pull, as the policy sees it. */
export interface PullTarget {
  readonly protocol: Protocol
  /** The registry or index name. */
  readonly pool: string
  /**
   * The repository as routed (`library/alpine`) or the normalized project name;
   * undefined for the index's project list, which any signed-in client may read
   * (and anonymous ones where the index has `anonymous: pull`).
   */
  readonly name?: string | undefined
}

export type Verdict =
  | { readonly allowed: true }
  | {
      readonly allowed: false
      /** `proxy`: no one may; `sign-in`: an anonymous client may not; `forbidden`: this identity may not. */
      readonly why: 'proxy' | 'sign-in' | 'forbidden'
      /** What refused it, for the log: `proxy[2]`, `access[0]`, `anonymous: none`. */
      readonly rule: string
    }

type Matcher = (name: string) => boolean

interface CompiledAccess {
  readonly protocol: Protocol
  readonly pool: Matcher
  readonly name: Matcher
  readonly users: ReadonlySet<string>
  readonly groups: ReadonlySet<string>
  readonly anonymous: boolean
}

interface CompiledProxy {
  readonly protocol: Protocol
  readonly pool: Matcher
  readonly allow: Matcher | undefined
  readonly deny: Matcher | undefined
}

/** PEP 503 normalization, for project globs (the same rule the PyPI routes apply to names). */
const normalizeProject = (name: string) => name.replace(/[-_.]+/g, '-').toLowerCase()

function matcher(protocol: Protocol, globs: readonly string[]): Matcher {
  const patterns = protocol === 'pypi' ? globs.map(normalizeProject) : [...globs]
  return picomatch(patterns, { dot: true })
}

export interface PolicyConfig {
  readonly auth?: AuthConfig | undefined
  readonly access: readonly AccessRuleConfig[]
  readonly proxy: readonly ProxyRuleConfig[]
  /** Each registry's and index's own `anonymous`, when set. */
  readonly anonymous: ReadonlyMap<string, AnonymousAccess>
}

export class AccessPolicy {
  readonly #auth: AuthConfig | undefined
  readonly #access: CompiledAccess[]
  readonly #proxy: CompiledProxy[]
  readonly #anonymous: ReadonlyMap<string, AnonymousAccess>

  constructor(config: PolicyConfig) {
    this.#auth = config.auth
    this.#anonymous = config.anonymous
    this.#access = config.access.map((rule) => {
      const protocol: Protocol = rule.registry === undefined ? 'pypi' : 'docker'
      return {
        protocol,
        pool: picomatch(rule.registry ?? rule.index ?? '**', { dot: true }),
        name: matcher(protocol, [rule.repository ?? rule.project ?? '**']),
        users: new Set(rule.users),
        groups: new Set(rule.groups),
        anonymous: rule.anonymous,
      }
    })
    this.#proxy = config.proxy.map((rule) => {
      const protocol: Protocol = rule.registry === undefined ? 'pypi' : 'docker'
      return {
        protocol,
        pool: picomatch(rule.registry ?? rule.index ?? '**', { dot: true }),
        allow: rule.allow === undefined ? undefined : matcher(protocol, rule.allow),
        deny: rule.deny.length === 0 ? undefined : matcher(protocol, rule.deny),
      }
    })
  }

  /** Whether clients must be known (auth configured). */
  get enabled(): boolean {
    return this.#auth !== undefined
  }

  /** Whether `identity` (undefined: anonymous) may pull `target`. */
  decide(identity: Identity | undefined, target: PullTarget): Verdict {
    const proxied = this.proxyVerdict(target)
    if (proxied) return proxied
    if (!this.#auth) return { allowed: true }
    const { name } = target
    const index =
      name === undefined
        ? -1
        : this.#access.findIndex(
            (rule) =>
              rule.protocol === target.protocol && rule.pool(target.pool) && rule.name(name),
          )
    if (name === undefined && identity) return { allowed: true }
    const rule = this.#access[index]
    if (rule) {
      const allowed =
        rule.anonymous ||
        (identity !== undefined &&
          (rule.users.has('*') ||
            rule.users.has(identity.name) ||
            identity.groups.some((g) => rule.groups.has(g))))
      return allowed ? { allowed: true } : refused(identity, `access[${index}]`)
    }
    const anonymous = this.#anonymous.get(target.pool) ?? this.#auth.anonymous
    return anonymous === 'pull' ? { allowed: true } : refused(identity, 'anonymous: none')
  }

  /** Whether `identity` may use the admin API and the status page. */
  isAdmin(identity: Identity | undefined): boolean {
    if (!identity || !this.#auth) return false
    const { users, groups } = this.#auth.admins
    return users.includes(identity.name) || identity.groups.some((g) => groups.includes(g))
  }

  /** The proxy rules' refusal of `target`, if any (they hold for everyone, admins too). */
  proxyVerdict(target: PullTarget): Verdict | undefined {
    if (target.name === undefined) return undefined
    for (const [i, rule] of this.#proxy.entries()) {
      if (rule.protocol !== target.protocol || !rule.pool(target.pool)) continue
      if (rule.deny?.(target.name) === true || (rule.allow && !rule.allow(target.name)))
        return { allowed: false, why: 'proxy', rule: `proxy[${i}]` }
    }
    return undefined
  }
}

function refused(identity: Identity | undefined, rule: string): Verdict {
  return { allowed: false, why: identity ? 'forbidden' : 'sign-in', rule }
}
