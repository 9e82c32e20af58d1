/**
 * Registry tokens, as Docker's token spec describes them: a JWT (ES256) whose
 * `access` claim lists what it grants (`repository:<name>:pull`), issued by
 * GET /-/token for the scopes a client asked for and the rules allow, and
 * presented as a Bearer token on every pull after. Short-lived (auth.tokenTTL);
 * the identity rides along (`sub`, `groups`) so rules are checked again on
 * each request.
 */
import { randomUUID } from 'node:crypto'
import { SignJWT, jwtVerify } from 'jose'
import type { Identity } from './identity.ts'
import type { SigningKey } from './signing-key.ts'

/** The `service` of the challenge and the `aud` of every token. */
export const TOKEN_SERVICE = 'pullthrough'
export const TOKEN_ISSUER = 'pullthrough'
/** Clock skew tolerated between replicas, seconds. */
const CLOCK_TOLERANCE_S = 30

/** One grant of a token: `{type: 'repository', name: 'library/alpine', actions: ['pull']}`. */
export interface Grant {
  readonly type: string
  readonly name: string
  readonly actions: readonly string[]
}

export interface VerifiedToken {
  /** Undefined for a token issued without credentials. */
  readonly identity: Identity | undefined
  readonly access: readonly Grant[]
  /** Issued to admin.token: rules do not apply to it (proxy rules still do). */
  readonly admin: boolean
}

export class RegistryTokens {
  constructor(
    private readonly key: SigningKey,
    private readonly ttlMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  get ttlSeconds(): number {
    return Math.floor(this.ttlMs / 1000)
  }

  async issue(
    identity: Identity | undefined,
    access: readonly Grant[],
    admin = false,
  ): Promise<string> {
    const now = Math.floor(this.now() / 1000)
    return new SignJWT({
      access,
      ...(identity ? { groups: identity.groups } : {}),
      ...(admin ? { admin: true } : {}),
    })
      .setProtectedHeader({ alg: 'ES256', typ: 'JWT' })
      .setIssuer(TOKEN_ISSUER)
      .setAudience(TOKEN_SERVICE)
      .setSubject(identity?.name ?? '')
      .setIssuedAt(now)
      .setNotBefore(now)
      .setExpirationTime(now + this.ttlSeconds)
      .setJti(randomUUID())
      .sign(this.key.privateKey)
  }

  /** The token's identity and grants; undefined when it is not one of ours, expired or altered. */
  async verify(token: string): Promise<VerifiedToken | undefined> {
    try {
      const { payload } = await jwtVerify(token, this.key.publicKey, {
        algorithms: ['ES256'],
        issuer: TOKEN_ISSUER,
        audience: TOKEN_SERVICE,
        clockTolerance: CLOCK_TOLERANCE_S,
        currentDate: new Date(this.now()),
        requiredClaims: ['exp', 'sub'],
      })
      const access = Array.isArray(payload.access) ? payload.access.filter(isGrant) : []
      const groups = Array.isArray(payload.groups)
        ? payload.groups.filter((g): g is string => typeof g === 'string')
        : []
      const name = payload.sub ?? ''
      return {
        identity: name === '' ? undefined : { name, groups },
        access,
        admin: payload.admin === true,
      }
    } catch {
      return undefined
    }
  }
}

function isGrant(value: unknown): value is Grant {
  if (typeof value !== 'object' || value === null) return false
  const grant = value as Record<string, unknown>
  return (
    typeof grant.type === 'string' &&
    typeof grant.name === 'string' &&
    Array.isArray(grant.actions) &&
    grant.actions.every((a) => typeof a === 'string')
  )
}

/** Parses a `scope` parameter (`repository:library/alpine:pull,push`); undefined when it is not one. */
export function parseScope(scope: string): Grant | undefined {
  const first = scope.indexOf(':')
  const last = scope.lastIndexOf(':')
  if (first < 1 || last <= first) return undefined
  const actions = scope
    .slice(last + 1)
    .split(',')
    .filter(Boolean)
  return { type: scope.slice(0, first), name: scope.slice(first + 1, last), actions }
}
