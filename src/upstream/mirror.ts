/**
 * One upstream mirror: its own undici Agent (keep-alive, no pipelining, named
 * timeouts), its credentials and token cache, its circuit breaker and its speed
 * statistics. `send` makes one attempt: auth (Basic, or the Bearer token dance
 * with one retry on 401) and redirects (bounded, and judged by the mirror's
 * RedirectPolicy). Failures come back as AttemptError with a reason.
 *
 * Credentials (Basic, or a Bearer token) go only to the mirror's own origin,
 * compared with `URL.origin`, and Basic credentials to a token realm only when
 * the challenge naming it came from that origin. Requests to any other origin
 * (redirect hops, realms) carry no Authorization and go through a second Agent
 * whose DNS lookup refuses addresses the policy does not allow.
 */
import type { IncomingHttpHeaders } from 'node:http'
import { Agent, request, type Dispatcher } from 'undici'
import type { Logger } from '../observability/logger.ts'
import { systemResolveHost, type ResolveHost } from './addresses.ts'
import { bearerChallenge, type Challenge } from './auth/challenge.ts'
import { TokenProvider, basicAuth, type Credentials } from './auth/token.ts'
import { CircuitBreaker, type BreakerState } from './breaker.ts'
import {
  AddressRefusedError,
  AttemptError,
  ForeignUrlError,
  TokenError,
  type FailureReason,
} from './errors.ts'
import { RedirectPolicy, type Refusal, type RefusalReason } from './redirect-policy.ts'
import { parseRetryAfterMs } from './retry.ts'
import { MirrorStats } from './selection.ts'

/** Redirect hops followed per attempt (blob CDNs use one). */
export const MAX_REDIRECTS = 5
/** Keep-alive connections per origin; beyond it requests queue in the Agent. */
const CONNECTIONS_PER_ORIGIN = 32
/** Keep-alive connections per other origin (CDN, realm); these are rarer than the mirror's own. */
const OTHER_ORIGIN_CONNECTIONS = 8
/** Idle keep-alive sockets are closed after this. */
const KEEP_ALIVE_TIMEOUT_MS = 30_000
/** The statuses that redirect (RFC 9110 §15.4) when they carry a Location. */
const REDIRECT_STATUSES: ReadonlySet<number> = new Set([301, 302, 303, 307, 308])

export interface MirrorTimeouts {
  readonly connectMs: number
  readonly headersMs: number
  readonly bodyIdleMs: number
  readonly documentMs: number
}

export interface MirrorOptions {
  readonly url: string
  readonly credentials?: Credentials | undefined
  readonly timeouts: MirrorTimeouts
  readonly breaker: { readonly failures: number; readonly cooldownMs: number }
  readonly now: () => number
  readonly logger: Logger
  readonly onBreakerChange?: (mirror: Mirror, state: BreakerState) => void
  /** Config `redirectHosts`: when set, the only hosts cross-origin redirects may go to. */
  readonly redirectHosts?: readonly string[] | undefined
  /** Told about every redirect, realm or URL the policy refused (the pool logs and counts it). */
  readonly onRefused?: (mirror: Mirror, refusal: Refusal) => void
  /** Replaces the Agent for the mirror's own origin (tests pass one with other limits). */
  readonly dispatcher?: Dispatcher
  readonly network?: MirrorNetwork
}

/** How hosts are found and trusted; the system's DNS and CA store unless given. */
export interface MirrorNetwork {
  /** Resolves host names (tests inject hostile DNS answers). */
  readonly resolveHost?: ResolveHost
  /** Extra trusted CA certificates, PEM (tests' own CA; TLS is always verified). */
  readonly ca?: string | Buffer
}

export interface SendOptions {
  readonly method: 'GET' | 'HEAD'
  readonly headers?: Readonly<Record<string, string>>
  /** Bearer scope to ask for when the mirror challenges (e.g. `repository:library/busybox:pull`). */
  readonly authScope?: string | undefined
  readonly signal?: AbortSignal | undefined
}

export interface MirrorResponse {
  readonly status: number
  readonly headers: IncomingHttpHeaders
  readonly body: Dispatcher.ResponseData['body']
  /**
   * Final URL after redirects, without userinfo. It keeps its query (relative
   * links resolve against it): log it only through `logUrl`.
   */
  readonly url: string
}

export class Mirror {
  /** The mirror's URL without credentials, used in logs and metric labels. */
  readonly name: string
  readonly base: URL
  readonly breaker: CircuitBreaker
  readonly stats = new MirrorStats()
  readonly dispatcher: Dispatcher
  readonly timeouts: MirrorTimeouts
  readonly #credentials: Credentials | undefined
  readonly #tokens: TokenProvider
  readonly #ownsDispatcher: boolean
  readonly #policy: RedirectPolicy
  /** For every other origin: connects only to addresses the policy allows. */
  readonly #elsewhere: Agent
  /** The last Bearer challenge this mirror sent; lets later requests send a cached token up front. */
  #challenge: Challenge | undefined

  constructor(private readonly options: MirrorOptions) {
    this.base = new URL(options.url.endsWith('/') ? options.url : `${options.url}/`)
    this.name = options.url.replace(/\/+$/, '')
    this.timeouts = options.timeouts
    this.#credentials = options.credentials
    this.#ownsDispatcher = options.dispatcher === undefined
    const ca = options.network?.ca === undefined ? {} : { ca: options.network.ca }
    const agentOptions = {
      headersTimeout: options.timeouts.headersMs,
      bodyTimeout: options.timeouts.bodyIdleMs,
      keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS,
      pipelining: 1,
    }
    this.dispatcher =
      options.dispatcher ??
      new Agent({
        ...agentOptions,
        connect: { timeout: options.timeouts.connectMs, ...ca },
        connections: CONNECTIONS_PER_ORIGIN,
      })
    this.#policy = new RedirectPolicy({
      base: this.base,
      redirectHosts: options.redirectHosts,
      resolveHost: options.network?.resolveHost ?? systemResolveHost,
    })
    this.#elsewhere = new Agent({
      ...agentOptions,
      connect: { timeout: options.timeouts.connectMs, lookup: this.#policy.lookup, ...ca },
      connections: OTHER_ORIGIN_CONNECTIONS,
    })
    this.#tokens = new TokenProvider({
      upstreamOrigin: this.base.origin,
      credentials: options.credentials,
      dispatcher: (realm) => this.#dispatcherFor(realm),
      timeoutMs: options.timeouts.documentMs,
      now: options.now,
    })
    this.breaker = new CircuitBreaker({
      failures: options.breaker.failures,
      cooldownMs: options.breaker.cooldownMs,
      now: options.now,
      onChange: (state) => options.onBreakerChange?.(this, state),
    })
  }

  isAvailable(): boolean {
    return this.breaker.isAvailable()
  }

  /**
   * Resolves a path relative to the mirror's base URL (`v2/...`, `requests/`).
   * Throws ForeignUrlError when the result is on another origin (`\\/host/`,
   * `//host/`, an absolute URL): paths may come from upstream data.
   */
  resolve(path: string): URL {
    const url = new URL(path.replace(/^\/+/, ''), this.base)
    if (url.origin !== this.base.origin) throw new ForeignUrlError(url.origin)
    return withoutUserinfo(url)
  }

  /**
   * One attempt: the response for any status the caller should see (2xx, 3xx
   * without Location, 4xx), or AttemptError for a failure that should move on.
   */
  async send(path: string, options: SendOptions): Promise<MirrorResponse> {
    const url = this.#resolveOwn(path)
    const first = await this.#follow(url, options, this.#authorization(options.authScope))
    if (first.status !== 401) return first
    await first.body.dump()
    if (new URL(first.url).origin !== this.base.origin) {
      // A 401 from a hop on another origin (a CDN) names a realm the upstream did
      // not vouch for: neither our credentials nor a token dance go there. It is
      // `auth` (the download needs authorization we will not give), not a sign
      // that the mirror is unhealthy, and a retry would meet the same hop.
      this.#refuse('foreign_challenge', first.url)
      throw this.#failure('auth', 401)
    }
    // A 401 names the token service (first contact, or the token expired early or
    // lacks the scope): fetch a fresh token and retry exactly once.
    const challenge = bearerChallenge(first.headers['www-authenticate'])
    if (!challenge) throw this.#failure('auth', 401)
    this.#challenge = challenge
    const scope = this.#scope(challenge, options.authScope)
    this.#tokens.invalidate(challenge, scope)
    const token = await this.#token(challenge, scope, options.signal)
    const second = await this.#follow(url, options, { authorization: `Bearer ${token}` })
    if (second.status === 401 || second.status === 403) {
      await second.body.dump()
      throw this.#failure('auth', second.status)
    }
    return second
  }

  #resolveOwn(path: string): URL {
    try {
      return this.resolve(path)
    } catch (error) {
      if (!(error instanceof ForeignUrlError)) throw error
      this.#refuse('foreign_url', error.target)
      throw this.#failure('redirect', undefined, error)
    }
  }

  /** What to send up front: a cached Bearer token, else Basic credentials, else nothing. */
  #authorization(authScope: string | undefined): Record<string, string> {
    const challenge = this.#challenge
    if (challenge) {
      const token = this.#tokens.cached(challenge, this.#scope(challenge, authScope))
      return token ? { authorization: `Bearer ${token}` } : {}
    }
    return this.#credentials ? { authorization: basicAuth(this.#credentials) } : {}
  }

  /** The caller's scope hint wins; the challenge's own scope is for requests without one. */
  #scope(challenge: Challenge, authScope: string | undefined): string | undefined {
    return authScope ?? challenge.params.scope
  }

  async #token(
    challenge: Challenge,
    scope: string | undefined,
    signal?: AbortSignal,
  ): Promise<string> {
    const realm = parseUrl(challenge.params.realm ?? '')
    const refused = realm ? await this.#policy.checkRealm(realm) : 'realm_scheme'
    if (refused !== undefined) {
      this.#refuse(refused, realm?.origin ?? 'invalid')
      throw this.#failure('redirect')
    }
    try {
      return await this.#tokens.fetch(challenge, scope, signal)
    } catch (error) {
      if (signal?.aborted) throw error
      if (error instanceof AddressRefusedError) {
        this.#refuse('realm_address', realm?.origin ?? 'invalid')
        throw this.#failure('redirect', undefined, error)
      }
      const status = error instanceof TokenError ? error.status : undefined
      const reason: FailureReason = status === 401 || status === 403 ? 'auth' : 'bad_response'
      this.options.logger.warn({ upstream: this.name, err: error }, 'token request failed')
      throw this.#failure(reason, status, error)
    }
  }

  /**
   * Sends and follows redirects. Same-origin hops keep `auth`; the first hop to
   * another origin drops it for the rest of the chain, and every cross-origin
   * hop must pass the redirect policy.
   */
  async #follow(
    start: URL,
    options: SendOptions,
    auth: Record<string, string>,
  ): Promise<MirrorResponse> {
    let url = start
    let hopHeaders: Record<string, string> = { ...options.headers, ...auth }
    for (let hop = 0; ; hop++) {
      const res = await this.#request(url, options, hopHeaders)
      const location = res.headers.location
      if (!REDIRECT_STATUSES.has(res.status) || typeof location !== 'string') {
        return { ...res, url: url.href }
      }
      await res.body.dump()
      const next = parseUrl(location, url)
      if (!next) {
        this.#refuse('scheme', 'invalid')
        throw this.#failure('redirect', res.status)
      }
      if (hop >= MAX_REDIRECTS) {
        this.#refuse('hops', next.origin)
        throw this.#failure('redirect', res.status)
      }
      if (next.origin !== this.base.origin) {
        const refused = await this.#policy.checkRedirect(url, next)
        if (refused !== undefined) {
          this.#refuse(refused, next.origin)
          throw this.#failure('redirect', res.status)
        }
        hopHeaders = Object.fromEntries(
          Object.entries(hopHeaders).filter(([name]) => name !== 'authorization'),
        )
      }
      url = next
    }
  }

  async #request(
    url: URL,
    options: SendOptions,
    headers: Record<string, string>,
  ): Promise<Omit<MirrorResponse, 'url'>> {
    try {
      const res = await request(url, {
        method: options.method,
        headers,
        dispatcher: this.#dispatcherFor(url),
        signal: options.signal,
      })
      return { status: res.statusCode, headers: res.headers, body: res.body }
    } catch (error) {
      if (options.signal?.aborted) throw error
      if (error instanceof AddressRefusedError) {
        this.#refuse('address', url.origin)
        throw this.#failure('redirect', undefined, error)
      }
      throw this.#failure(classify(error), undefined, error)
    }
  }

  /** The mirror's own Agent for its origin; the address-checking one for any other. */
  #dispatcherFor(url: URL): Dispatcher {
    return url.origin === this.base.origin ? this.dispatcher : this.#elsewhere
  }

  #refuse(reason: RefusalReason, target: string): void {
    this.options.onRefused?.(this, { reason, target: originOf(target) })
  }

  /** Builds the AttemptError for a failure of this mirror. */
  #failure(reason: FailureReason, status?: number, cause?: unknown): AttemptError {
    return new AttemptError(
      { upstream: this.name, reason, ...(status ? { status } : {}) },
      undefined,
      { cause },
    )
  }

  /** AttemptError for an HTTP status that should move on (5xx, 429). */
  statusFailure(status: number, headers: IncomingHttpHeaders): AttemptError {
    const reason: FailureReason =
      status === 429 ? 'status_429' : status === 404 ? 'status_404' : 'status_5xx'
    return new AttemptError(
      { upstream: this.name, reason, status },
      parseRetryAfterMs(headers['retry-after'], this.options.now()),
    )
  }

  /** Drops every connection at once: by now fills were aborted, and nothing may hold shutdown. */
  async close(): Promise<void> {
    await Promise.all([
      this.#ownsDispatcher ? this.dispatcher.destroy() : undefined,
      this.#elsewhere.destroy(),
    ])
  }
}

/** `new URL(value, base)`, with userinfo removed; undefined when it does not parse. */
function parseUrl(value: string, base?: URL): URL | undefined {
  try {
    return withoutUserinfo(new URL(value, base))
  } catch {
    return undefined
  }
}

/** Userinfo in a URL from upstream data is never sent (undici would make it Basic auth) nor kept. */
function withoutUserinfo(url: URL): URL {
  if (url.username === '' && url.password === '') return url
  const copy = new URL(url)
  copy.username = ''
  copy.password = ''
  return copy
}

/** The origin of a URL string, for logs; `invalid` when it does not parse. */
function originOf(value: string): string {
  return parseUrl(value)?.origin ?? 'invalid'
}

/** Maps undici and socket errors to a failure reason. */
export function classify(error: unknown): FailureReason {
  const code = (error as { code?: string } | null)?.code ?? ''
  switch (code) {
    case 'UND_ERR_CONNECT_TIMEOUT':
      return 'timeout_connect'
    case 'UND_ERR_HEADERS_TIMEOUT':
      return 'timeout_headers'
    case 'UND_ERR_BODY_TIMEOUT':
      return 'timeout_body'
    case 'ECONNREFUSED':
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return 'connect'
    default:
      return (error as { name?: string } | null)?.name === 'TimeoutError'
        ? 'timeout_document'
        : 'reset'
  }
}
