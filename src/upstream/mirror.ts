/**
 * One upstream mirror: its own undici Agent (keep-alive, no pipelining, named
 * timeouts), its credentials and token cache, its circuit breaker and its speed
 * statistics. `send` makes one attempt: auth (Basic, or the Bearer token dance
 * with one retry on 401) and redirects (bounded; credentials never leave the
 * mirror's own origin). Failures come back as AttemptError with a reason.
 */
import type { IncomingHttpHeaders } from 'node:http'
import { Agent, request, type Dispatcher } from 'undici'
import type { Logger } from '../observability/logger.ts'
import { bearerChallenge, type Challenge } from './auth/challenge.ts'
import { TokenProvider, basicAuth, type Credentials } from './auth/token.ts'
import { CircuitBreaker, type BreakerState } from './breaker.ts'
import { AttemptError, TokenError, type FailureReason } from './errors.ts'
import { parseRetryAfterMs } from './retry.ts'
import { MirrorStats } from './selection.ts'

/** Redirect hops followed per attempt (blob CDNs use one). */
export const MAX_REDIRECTS = 5
/** Keep-alive connections per origin; beyond it requests queue in the Agent. */
const CONNECTIONS_PER_ORIGIN = 32
/** Idle keep-alive sockets are closed after this. */
const KEEP_ALIVE_TIMEOUT_MS = 30_000

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
  /** Replaces the Agent (tests pass one with other limits). */
  readonly dispatcher?: Dispatcher
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
  /** Final URL after redirects (never with credentials). */
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
  /** The last Bearer challenge this mirror sent; lets later requests send a cached token up front. */
  #challenge: Challenge | undefined

  constructor(private readonly options: MirrorOptions) {
    this.base = new URL(options.url.endsWith('/') ? options.url : `${options.url}/`)
    this.name = options.url.replace(/\/+$/, '')
    this.timeouts = options.timeouts
    this.#credentials = options.credentials
    this.#ownsDispatcher = options.dispatcher === undefined
    this.dispatcher =
      options.dispatcher ??
      new Agent({
        connect: { timeout: options.timeouts.connectMs },
        headersTimeout: options.timeouts.headersMs,
        bodyTimeout: options.timeouts.bodyIdleMs,
        keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS,
        pipelining: 1,
        connections: CONNECTIONS_PER_ORIGIN,
      })
    this.#tokens = new TokenProvider({
      upstreamOrigin: this.base.origin,
      credentials: options.credentials,
      dispatcher: this.dispatcher,
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

  /** Resolves a path relative to the mirror's base URL (`v2/...`, `requests/`). */
  resolve(path: string): URL {
    return new URL(path.replace(/^\/+/, ''), this.base)
  }

  /**
   * One attempt: the response for any status the caller should see (2xx, 3xx
   * without Location, 4xx), or AttemptError for a failure that should move on.
   */
  async send(path: string, options: SendOptions): Promise<MirrorResponse> {
    const url = this.resolve(path)
    const first = await this.#follow(url, options, this.#authorization(options.authScope))
    if (first.status !== 401) return first
    await first.body.dump()
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
    try {
      return await this.#tokens.fetch(challenge, scope, signal)
    } catch (error) {
      if (signal?.aborted) throw error
      const status = error instanceof TokenError ? error.status : undefined
      const reason: FailureReason = status === 401 || status === 403 ? 'auth' : 'bad_response'
      this.options.logger.warn({ upstream: this.name, err: error }, 'token request failed')
      throw this.#failure(reason, status, error)
    }
  }

  /** Sends and follows redirects; Authorization is dropped when a hop leaves the mirror's origin. */
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
      if (![301, 302, 303, 307, 308].includes(res.status) || typeof location !== 'string') {
        return { ...res, url: url.href }
      }
      await res.body.dump()
      if (hop >= MAX_REDIRECTS) throw this.#failure('redirect', res.status)
      url = new URL(location, url)
      if (url.protocol !== 'https:' && url.protocol !== 'http:')
        throw this.#failure('redirect', res.status)
      if (url.origin !== this.base.origin) {
        hopHeaders = Object.fromEntries(
          Object.entries(hopHeaders).filter(([name]) => name !== 'authorization'),
        )
      }
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
        dispatcher: this.dispatcher,
        signal: options.signal,
      })
      return { status: res.statusCode, headers: res.headers, body: res.body }
    } catch (error) {
      if (options.signal?.aborted) throw error
      throw this.#failure(classify(error), undefined, error)
    }
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
    if (this.#ownsDispatcher) await this.dispatcher.destroy()
  }
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
