/**
 * The registry Bearer token flow (Docker's token authentication spec): a 401
 * carries `WWW-Authenticate: Bearer realm,service,scope`; a GET to the realm
 * (with Basic credentials when configured, anonymously otherwise) returns a
 * token, which is cached per realm/service/scope until shortly before it
 * expires. Concurrent requests for the same scope share one token fetch.
 */
import type { Dispatcher } from 'undici'
import { request } from 'undici'
import { TokenError } from '../errors.ts'
import type { Challenge } from './challenge.ts'

/** Lifetime assumed when the token server gives none (the spec's default). */
const DEFAULT_TOKEN_LIFETIME_S = 60
/** Tokens are dropped this long before they expire (at most 10% of their life). */
const EXPIRY_MARGIN_MS = 30_000
/** Largest token response accepted. */
const MAX_TOKEN_RESPONSE_BYTES = 64 * 1024

export interface Credentials {
  readonly username: string
  readonly password: string
}

interface CachedToken {
  readonly token: string
  readonly refreshAt: number
}

export interface TokenProviderOptions {
  /** Origin of the upstream; an HTTPS upstream's credentials go only to an HTTPS realm. */
  readonly upstreamOrigin: string
  readonly credentials?: Credentials | undefined
  /** The Agent for a realm: the upstream's own, or the address-checking one for other origins. */
  readonly dispatcher: (realm: URL) => Dispatcher
  readonly timeoutMs: number
  readonly now: () => number
}

export class TokenProvider {
  readonly #cache = new Map<string, CachedToken>()
  readonly #pending = new Map<string, Promise<string>>()

  constructor(private readonly options: TokenProviderOptions) {}

  /** A still-valid cached token for the challenge's realm/service and `scope`. */
  cached(challenge: Challenge, scope: string | undefined): string | undefined {
    const key = cacheKey(challenge, scope)
    const hit = this.#cache.get(key)
    if (hit && hit.refreshAt > this.options.now()) return hit.token
    this.#cache.delete(key)
    return undefined
  }

  /** Drops a token the upstream refused. */
  invalidate(challenge: Challenge, scope: string | undefined): void {
    this.#cache.delete(cacheKey(challenge, scope))
  }

  /** Fetches (or joins a fetch of) a token for the challenge and scope. */
  async fetch(
    challenge: Challenge,
    scope: string | undefined,
    signal?: AbortSignal,
  ): Promise<string> {
    const key = cacheKey(challenge, scope)
    const pending = this.#pending.get(key)
    if (pending) return pending
    const promise = this.#fetchToken(challenge, scope, signal).finally(() =>
      this.#pending.delete(key),
    )
    this.#pending.set(key, promise)
    return promise
  }

  async #fetchToken(
    challenge: Challenge,
    scope: string | undefined,
    signal?: AbortSignal,
  ): Promise<string> {
    const realm = new URL(challenge.params.realm ?? '')
    if (realm.protocol !== 'https:' && realm.protocol !== 'http:')
      throw new TokenError('token realm is not http(s)')
    // Userinfo in the realm would become a second Authorization: the upstream does not choose it.
    realm.username = ''
    realm.password = ''
    if (challenge.params.service) realm.searchParams.set('service', challenge.params.service)
    if (scope) realm.searchParams.set('scope', scope)
    const headers: Record<string, string> = { accept: 'application/json' }
    const { credentials } = this.options
    // The mirror refuses such realms first; this is the last line: credentials of an
    // HTTPS upstream only go to an HTTPS realm.
    const upstreamIsPlain = this.options.upstreamOrigin.startsWith('http:')
    if (credentials && (realm.protocol === 'https:' || upstreamIsPlain)) {
      headers.authorization = basicAuth(credentials)
    }
    const timeout = AbortSignal.timeout(this.options.timeoutMs)
    const res = await request(realm, {
      method: 'GET',
      headers,
      dispatcher: this.options.dispatcher(realm),
      signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
    })
    if (res.statusCode !== 200) {
      await res.body.dump()
      throw new TokenError(`token server answered ${res.statusCode}`, res.statusCode)
    }
    const text = await readLimited(res.body, MAX_TOKEN_RESPONSE_BYTES)
    let parsed: { token?: unknown; access_token?: unknown; expires_in?: unknown }
    try {
      parsed = JSON.parse(text) as typeof parsed
    } catch {
      throw new TokenError('token server sent invalid JSON')
    }
    const token = typeof parsed.token === 'string' ? parsed.token : parsed.access_token
    if (typeof token !== 'string' || token === '')
      throw new TokenError('token server sent no token')
    const lifetimeMs =
      (typeof parsed.expires_in === 'number' && parsed.expires_in > 0
        ? parsed.expires_in
        : DEFAULT_TOKEN_LIFETIME_S) * 1000
    const margin = Math.min(EXPIRY_MARGIN_MS, lifetimeMs * 0.1)
    this.#cache.set(cacheKey(challenge, scope), {
      token,
      refreshAt: this.options.now() + lifetimeMs - margin,
    })
    return token
  }
}

/** `Basic base64(user:password)`. */
export function basicAuth(credentials: Credentials): string {
  return `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64')}`
}

function cacheKey(challenge: Challenge, scope: string | undefined): string {
  return `${challenge.params.realm ?? ''}\n${challenge.params.service ?? ''}\n${scope ?? ''}`
}

async function readLimited(body: AsyncIterable<Buffer>, limit: number): Promise<string> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of body) {
    size += chunk.length
    if (size > limit) throw new TokenError(`token response larger than ${limit} bytes`)
    chunks.push(chunk)
  }
  return Buffer.concat(chunks).toString('utf8')
}
