/**
 * JWTs from an external identity provider (OIDC tokens of CI systems,
 * Kubernetes service accounts): checked against the provider's keys (its JWKS
 * URL, or a JWKS file), issuer, audience, expiry and not-before; the user and
 * groups come from configured claims. Only asymmetric algorithms: a provider
 * never shares an HMAC secret with us.
 */
import {
  createLocalJWKSet,
  createRemoteJWKSet,
  jwtVerify,
  type JSONWebKeySet,
  type JWTPayload,
} from 'jose'
import type { AuthConfig } from '../config/schema.ts'
import type { Identity } from './identity.ts'

type JwtConfig = NonNullable<AuthConfig['jwt']>

/** Bound on one fetch of the provider's keys. */
export const JWKS_TIMEOUT_MS = 5_000
/** Keys are refetched at most this often (an unknown key id asks again after it). */
export const JWKS_COOLDOWN_MS = 30_000
/** Keys are kept this long without a refetch. */
export const JWKS_MAX_AGE_MS = 10 * 60_000
/** Clock skew tolerated with the provider, seconds. */
const CLOCK_TOLERANCE_S = 30
const ALGORITHMS = [
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
]
/** A user or group name from a claim: GitHub's `sub` is `repo:org/app:ref:...`, so colons are fine. */
const CLAIMED_NAME = /^\S{1,256}$/
/** Groups read from one token at most. */
const MAX_GROUPS = 256

/** Where the keys come from now (a file is re-read on change by the caller). */
export type KeySource = { readonly url: URL } | { readonly file: () => Promise<JSONWebKeySet> }

export class ExternalJwt {
  readonly #remote: ReturnType<typeof createRemoteJWKSet> | undefined

  constructor(
    private readonly config: JwtConfig,
    private readonly keys: KeySource,
    private readonly now: () => number = Date.now,
  ) {
    this.#remote =
      'url' in keys
        ? createRemoteJWKSet(keys.url, {
            timeoutDuration: JWKS_TIMEOUT_MS,
            cooldownDuration: JWKS_COOLDOWN_MS,
            cacheMaxAge: JWKS_MAX_AGE_MS,
          })
        : undefined
  }

  /** Whether `secret` has the shape of a JWT (three base64url parts, a JSON header). */
  static looksLikeJwt(secret: string): boolean {
    return /^eyJ[\w-]*\.[\w-]+\.[\w-]+$/.test(secret)
  }

  /** The identity the token names; undefined when it does not check out. */
  async verify(token: string): Promise<Identity | undefined> {
    const options = {
      issuer: this.config.issuer,
      audience: this.config.audience as string | string[],
      algorithms: ALGORITHMS,
      clockTolerance: CLOCK_TOLERANCE_S,
      currentDate: new Date(this.now()),
      requiredClaims: ['exp'],
    }
    let payload: JWTPayload
    try {
      if (this.#remote) ({ payload } = await jwtVerify(token, this.#remote, options))
      else if ('file' in this.keys) {
        const set = createLocalJWKSet(await this.keys.file())
        ;({ payload } = await jwtVerify(token, set, options))
      } else return undefined
    } catch {
      return undefined
    }
    const name = payload[this.config.userClaim]
    if (typeof name !== 'string' || !CLAIMED_NAME.test(name)) return undefined
    const claimed = payload[this.config.groupsClaim]
    const groups = (Array.isArray(claimed) ? claimed : [claimed])
      .filter((g): g is string => typeof g === 'string' && CLAIMED_NAME.test(g))
      .slice(0, MAX_GROUPS)
    return { name, groups }
  }
}

/** Parses a JWKS document; throws when it is not one. */
export function parseJwks(text: string): JSONWebKeySet {
  const parsed = JSON.parse(text) as unknown
  if (
    typeof parsed !== 'object' ||
    parsed === null ||
    !Array.isArray((parsed as { keys?: unknown }).keys)
  )
    throw new Error('not a JWKS document (an object with "keys": [...])')
  createLocalJWKSet(parsed as JSONWebKeySet)
  return parsed as JSONWebKeySet
}
