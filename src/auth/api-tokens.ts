/**
 * Static API tokens for CI systems and scripts: `pullthrough token create`
 * makes one for a user (and groups), shows it once, and keeps only its SHA-256
 * in the metadata store, so replicas share them and a stolen store gives no
 * usable token. A client presents it as the password of Basic credentials (pip,
 * docker login, skopeo --creds) or as a Bearer token. Looked up by hash; a
 * token seen lately is trusted for LOOKUP_TTL_MS without asking the store
 * again, which is how long a revocation may take to reach other replicas.
 */
import { createHash, randomBytes } from 'node:crypto'
import type { ApiTokenRecord, MetadataStore } from '../metadata/store.ts'
import type { Identity } from './identity.ts'

/** Every API token starts with this, so it is told from a password at a glance (and by scanners). */
export const API_TOKEN_PREFIX = 'ptk_'
/** Random bytes in a token. */
const TOKEN_BYTES = 32
/** Hex digits of the hash that name a token. */
const ID_CHARS = 12
/** How long a looked-up token is trusted before the store is asked again. */
export const LOOKUP_TTL_MS = 5_000
/** Looked-up tokens remembered at most. */
const MAX_REMEMBERED = 1_000
export const PRINCIPAL = /^[^:\s]{1,256}$/

export type ApiTokenStore = Pick<
  MetadataStore,
  'putApiToken' | 'getApiToken' | 'listApiTokens' | 'deleteApiToken'
>

export interface NewApiToken {
  readonly user: string
  readonly groups?: readonly string[]
  readonly description?: string
  /** Valid for this long (ms); undefined: until revoked. */
  readonly validForMs?: number
}

export class ApiTokens {
  readonly #seen = new Map<string, { record: ApiTokenRecord | undefined; until: number }>()

  constructor(
    private readonly store: ApiTokenStore,
    private readonly now: () => number = Date.now,
  ) {}

  /** Makes a token; the secret is in the answer only. */
  async create(spec: NewApiToken): Promise<{ token: string; record: ApiTokenRecord }> {
    const token = `${API_TOKEN_PREFIX}${randomBytes(TOKEN_BYTES).toString('base64url')}`
    const hash = hashOf(token)
    const createdAt = this.now()
    const record: ApiTokenRecord = {
      id: hash.slice(0, ID_CHARS),
      hash,
      user: spec.user,
      groups: [...(spec.groups ?? [])],
      description: spec.description ?? '',
      createdAt,
      ...(spec.validForMs === undefined ? {} : { expiresAt: createdAt + spec.validForMs }),
    }
    await this.store.putApiToken(record)
    return { token, record }
  }

  /** Every token, oldest first. */
  async list(): Promise<ApiTokenRecord[]> {
    return (await this.store.listApiTokens()).sort((a, b) => a.createdAt - b.createdAt)
  }

  /** Revokes the token named `id`; false when there is none. */
  async revoke(id: string): Promise<boolean> {
    const record = (await this.store.listApiTokens()).find((r) => r.id === id)
    if (!record) return false
    await this.store.deleteApiToken(record.hash)
    this.#seen.delete(record.hash)
    return true
  }

  /** Who `token` signs in as; undefined when it is unknown, revoked or expired. */
  async verify(token: string): Promise<Identity | undefined> {
    if (!token.startsWith(API_TOKEN_PREFIX)) return undefined
    const hash = hashOf(token)
    const now = this.now()
    let seen = this.#seen.get(hash)
    if (!seen || seen.until <= now) {
      seen = { record: await this.store.getApiToken(hash), until: now + LOOKUP_TTL_MS }
      this.#seen.delete(hash)
      this.#seen.set(hash, seen)
      if (this.#seen.size > MAX_REMEMBERED) {
        const oldest = this.#seen.keys().next().value
        if (oldest !== undefined) this.#seen.delete(oldest)
      }
    }
    const { record } = seen
    if (!record || (record.expiresAt !== undefined && record.expiresAt <= now)) return undefined
    return { name: record.user, groups: record.groups }
  }
}

export function isApiToken(secret: string): boolean {
  return secret.startsWith(API_TOKEN_PREFIX)
}

function hashOf(token: string): string {
  return createHash('sha256').update(token).digest('hex')
}
