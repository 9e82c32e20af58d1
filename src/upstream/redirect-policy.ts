/**
 * Where one upstream may send pullthrough besides its own origin: redirect
 * targets (blob CDNs, file hosts) and token realms named by its challenges.
 *
 * - Never to anything but http(s), and never from https to http: an https
 *   upstream's redirects and realms stay on https (a plain-http upstream,
 *   typical of tests and internal registries, may use http; nothing is
 *   downgraded then).
 * - Never to a loopback, link-local, private (RFC 1918, unique-local), CGNAT,
 *   unspecified or reserved address, unless the upstream's own host has an
 *   address of that same class. IP literals are judged before connecting;
 *   names are judged by `lookup`, which the Agent for other origins uses at
 *   connect time, so a name that resolves to a public address once and to
 *   169.254.169.254 the next time (DNS rebinding) cannot get through.
 * - With `redirectHosts` set, cross-origin redirects go only to those hosts.
 *   The operator listed them by name and so trusts them: the address rule is
 *   not applied to them (an internal CDN may well be on a private address).
 *   Realms are named by the upstream's own challenge and are not limited to
 *   the list, but the address rule applies to them unless they are listed.
 */
import type { LookupAddress, LookupOptions } from 'node:dns'
import type { LookupFunction } from 'node:net'
import {
  addressClass,
  hostClasses,
  ipLiteral,
  type AddressClass,
  type ResolveHost,
} from './addresses.ts'
import { AddressRefusedError } from './errors.ts'

/** Why a redirect, realm or URL was refused: the `reason` label of redirects_refused_total. */
export type RefusalReason =
  /** A Location that is not an http(s) URL. */
  | 'scheme'
  /** https -> http. */
  | 'downgrade'
  /** Not in the upstream's `redirectHosts`. */
  | 'host_not_allowed'
  /** Loopback, link-local, private... and the upstream is not on such an address. */
  | 'address'
  /** More redirects than MAX_REDIRECTS. */
  | 'hops'
  /** A path from upstream data (Link header) that resolves off the upstream's origin. */
  | 'foreign_url'
  /** A 401 challenge from a redirect hop on another origin: its realm is not trusted. */
  | 'foreign_challenge'
  | 'realm_scheme'
  | 'realm_downgrade'
  | 'realm_address'

/** A refused target, for the log line and the counter: the target's origin only. */
export interface Refusal {
  readonly reason: RefusalReason
  readonly target: string
}

export interface RedirectPolicyOptions {
  /** The upstream's base URL. */
  readonly base: URL
  /** Config `redirectHosts`: `cdn.example.com` or `*.example.com`. */
  readonly redirectHosts?: readonly string[] | undefined
  readonly resolveHost: ResolveHost
}

export class RedirectPolicy {
  readonly #base: URL
  readonly #hosts: readonly string[] | undefined
  readonly #resolveHost: ResolveHost
  /** Classes of the upstream's own addresses, resolved once (again after a failure). */
  #own: Promise<ReadonlySet<AddressClass>> | undefined

  constructor(options: RedirectPolicyOptions) {
    this.#base = options.base
    this.#hosts = options.redirectHosts
    this.#resolveHost = options.resolveHost
  }

  /** Why a redirect from `from` to `to` (another origin) must not be followed; undefined to follow it. */
  async checkRedirect(from: URL, to: URL): Promise<RefusalReason | undefined> {
    if (to.protocol !== 'https:' && to.protocol !== 'http:') return 'scheme'
    if (to.protocol === 'http:' && (from.protocol === 'https:' || this.#base.protocol === 'https:'))
      return 'downgrade'
    if (this.#hosts !== undefined && !this.#listed(to.hostname)) return 'host_not_allowed'
    return (await this.#addressAllowed(to)) ? undefined : 'address'
  }

  /** Why a token realm named by the upstream's own challenge must not be asked; undefined to ask it. */
  async checkRealm(realm: URL): Promise<RefusalReason | undefined> {
    if (realm.protocol !== 'https:' && realm.protocol !== 'http:') return 'realm_scheme'
    if (realm.protocol === 'http:' && this.#base.protocol === 'https:') return 'realm_downgrade'
    if (realm.origin === this.#base.origin) return undefined
    return (await this.#addressAllowed(realm)) ? undefined : 'realm_address'
  }

  /**
   * The `lookup` of the Agent for other origins: resolves, keeps only allowed
   * addresses, and fails with AddressRefusedError when none is left.
   */
  readonly lookup: LookupFunction = (hostname, options: LookupOptions, callback) => {
    this.#allowedAddresses(hostname, options).then(
      (addresses) => {
        const first = addresses[0]
        if (options.all) callback(null, addresses as LookupAddress[])
        else if (first) callback(null, first.address, first.family)
        else callback(notFound(hostname), '', 0)
      },
      // Node's lookup contract: errors are errno-style (AddressRefusedError carries a code too).
      (error: unknown) => callback(error as NodeJS.ErrnoException, '', 0),
    )
  }

  async #allowedAddresses(
    hostname: string,
    options: LookupOptions,
  ): Promise<readonly LookupAddress[]> {
    const family = options.family === 'IPv4' ? 4 : options.family === 'IPv6' ? 6 : options.family
    const resolved = (await this.#resolveHost(hostname)).filter(
      (a) => !family || a.family === family,
    )
    if (resolved.length === 0) throw notFound(hostname)
    if (this.#listed(hostname)) return resolved
    const own = await this.#ownClasses()
    const allowed = resolved.filter((a) => allowedClass(addressClass(a.address), own))
    if (allowed.length === 0) throw new AddressRefusedError(hostname)
    return allowed
  }

  /** IP literals are judged here; names at connect time by `lookup`. */
  async #addressAllowed(url: URL): Promise<boolean> {
    const literal = ipLiteral(url.hostname)
    if (literal === undefined || this.#listed(url.hostname)) return true
    return allowedClass(addressClass(literal), await this.#ownClasses())
  }

  #listed(hostname: string): boolean {
    if (this.#hosts === undefined) return false
    const host = hostname.toLowerCase().replace(/\.$/, '')
    return this.#hosts.some((pattern) =>
      pattern.startsWith('*.')
        ? host.length > pattern.length - 1 && host.endsWith(pattern.slice(1))
        : host === pattern,
    )
  }

  #ownClasses(): Promise<ReadonlySet<AddressClass>> {
    this.#own ??= hostClasses(this.#base.hostname, this.#resolveHost).catch(() => {
      // Unknown for now: judge as a public upstream, and try again next time.
      this.#own = undefined
      return new Set<AddressClass>()
    })
    return this.#own
  }
}

function notFound(hostname: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`no address for ${hostname}`), { code: 'ENOTFOUND' })
}

function allowedClass(cls: AddressClass, own: ReadonlySet<AddressClass>): boolean {
  return cls === 'public' || own.has(cls)
}
