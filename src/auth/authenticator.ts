/**
 * Turns presented credentials into who the client is: Basic checked against
 * the htpasswd users, Bearer as a registry token of ours; an API token, a JWT
 * of the configured identity provider or admin.token works as either (the
 * password of Basic, or the Bearer token). Undefined means the credentials are
 * wrong: a 401, never a silent fall back to anonymous.
 */
import { createHash, timingSafeEqual } from 'node:crypto'
import { isApiToken, type ApiTokens } from './api-tokens.ts'
import { ExternalJwt } from './external-jwt.ts'
import type { HtpasswdUsers } from './htpasswd.ts'
import type { Credentials, Identity } from './identity.ts'
import type { Grant, RegistryTokens } from './registry-token.ts'

export interface Principal {
  /** Undefined for an anonymous registry token. */
  readonly identity: Identity | undefined
  /** What a registry token grants; undefined for credentials that are not a token (checked by rules only). */
  readonly grants: readonly Grant[] | undefined
  /** Signed in with admin.token (or a registry token issued to it). */
  readonly adminToken: boolean
}

/** The identity admin.token stands for. */
export const ADMIN_TOKEN_IDENTITY: Identity = { name: 'admin-token', groups: [] }

export class Authenticator {
  readonly #adminDigest: Buffer | undefined

  constructor(
    private readonly users: HtpasswdUsers | undefined,
    private readonly tokens: RegistryTokens | undefined,
    adminToken: string | undefined,
    private readonly apiTokens?: ApiTokens,
    private readonly externalJwt?: ExternalJwt,
  ) {
    this.#adminDigest = adminToken === undefined ? undefined : digestOf(adminToken)
  }

  async authenticate(credentials: Credentials): Promise<Principal | undefined> {
    const secret = credentials.kind === 'basic' ? credentials.password : credentials.token
    if (this.#isAdminToken(secret))
      return { identity: ADMIN_TOKEN_IDENTITY, grants: undefined, adminToken: true }
    // An API token, as a Bearer token or as the password (any user name) of Basic credentials.
    if (this.apiTokens && isApiToken(secret)) {
      const identity = await this.apiTokens.verify(secret)
      return identity && { identity, grants: undefined, adminToken: false }
    }
    // A JWT of the identity provider, likewise; our own registry tokens are JWTs too, tried first.
    if (this.externalJwt && ExternalJwt.looksLikeJwt(secret)) {
      const own = credentials.kind === 'bearer' ? await this.tokens?.verify(secret) : undefined
      if (own) return { identity: own.identity, grants: own.access, adminToken: own.admin }
      const identity = await this.externalJwt.verify(secret)
      return identity && { identity, grants: undefined, adminToken: false }
    }
    if (credentials.kind === 'bearer') {
      const verified = await this.tokens?.verify(credentials.token)
      return (
        verified && {
          identity: verified.identity,
          grants: verified.access,
          adminToken: verified.admin,
        }
      )
    }
    const identity = await this.users?.verify(credentials.user, credentials.password)
    return identity && { identity, grants: undefined, adminToken: false }
  }

  #isAdminToken(secret: string): boolean {
    return this.#adminDigest !== undefined && timingSafeEqual(digestOf(secret), this.#adminDigest)
  }
}

function digestOf(text: string): Buffer {
  return createHash('sha256').update(text).digest()
}
