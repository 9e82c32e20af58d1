/**
 * The metadata store: small, structured facts about the cache that both protocols
 * and every replica share. Content itself lives in the blob store; this holds
 * what points at it and what decides freshness and eviction.
 *
 * Two implementations satisfy this contract (one shared test suite runs against both):
 * FsMetadataStore (embedded, one process) and RedisMetadataStore (replicas).
 * Every method either resolves or rejects with a typed MetadataError within the
 * store's bounded timeouts: callers never hang on an unavailable store.
 *
 * Index pages (and other cached documents) and tag records that nobody read or
 * wrote for the store's retention (retention.ts) are collected, so random or
 * abandoned names cannot grow the store without bound. Blob records are not:
 * eviction decides about them.
 */

/** A Docker tag resolved to a manifest. */
export interface TagRecord {
  readonly digest: string
  readonly mediaType: string
  /** Manifest size in bytes. */
  readonly size: number
  /** When the upstream last confirmed this tag -> digest (ms since epoch). */
  readonly fetchedAt: number
  /** When the tag came to point at this digest, as this cache saw it (absent in records of earlier versions). */
  readonly updatedAt?: number
  readonly etag?: string
}

/**
 * A cached upstream document, under a namespace and a key: a PyPI project page
 * (the index, the project), a Docker tag list, the pointer to a streamed
 * document (project list, legacy JSON, a file without a hash).
 */
export interface DocumentRecord {
  readonly fetchedAt: number
  readonly etag?: string
  /** Which upstream the document came from (its URL, never credentials). */
  readonly upstream?: string
  /** The document; JSON-serialisable, opaque to the store. (`page`: the stored name since the first release.) */
  readonly page: unknown
}

/** A document as read back, with the size of its stored (serialised) form. */
export interface SizedDocument {
  readonly record: DocumentRecord
  /** Bytes of the record as the store holds it (its JSON). */
  readonly bytes: number
}

/** What the cache knows about one stored blob, for eviction and stats. */
export interface BlobRecord {
  readonly digest: string
  readonly size: number
  readonly createdAt: number
  readonly lastAccess: number
  readonly hits: number
}

export type { ArtifactReference, UsageAnswer, UsageDelta, UsageQuery } from './statistics.ts'
import type { ArtifactReference, UsageAnswer, UsageDelta, UsageQuery } from './statistics.ts'

/**
 * A static API token (`pullthrough token create`), stored only as the SHA-256
 * of the secret; `id` (the first hex digits of that hash) names it in lists
 * and revocations. Never collected: tokens live until revoked or expired.
 */
export interface ApiTokenRecord {
  readonly id: string
  /** SHA-256 of the token, hex. */
  readonly hash: string
  /** The user the token signs in as. */
  readonly user: string
  readonly groups: readonly string[]
  readonly description: string
  readonly createdAt: number
  /** When it stops working (ms since epoch); absent: never. */
  readonly expiresAt?: number
}

/** A lease is held by one owner until it expires or is released. */
export interface LeaseOptions {
  readonly ttlMs: number
}

export interface MetadataStore {
  /** Which implementation this is, for logs and /readyz ("fs" or "redis"). */
  readonly kind: string

  getTag(registry: string, repository: string, tag: string): Promise<TagRecord | undefined>
  putTag(registry: string, repository: string, tag: string, record: TagRecord): Promise<void>
  deleteTag(registry: string, repository: string, tag: string): Promise<void>
  /** Repositories of a registry that have at least one cached tag, sorted. */
  listRepositories(registry: string): Promise<string[]>
  /** The cached tag records of a repository, by name; reading them is not a use. */
  listTags(registry: string, repository: string): Promise<Map<string, TagRecord>>

  getDocument(namespace: string, key: string): Promise<DocumentRecord | undefined>
  /** getDocument, with the size of the stored record (to weigh it in memory without serialising it again). */
  readDocument(namespace: string, key: string): Promise<SizedDocument | undefined>
  /** Stores the record; resolves with the bytes of its stored form. */
  putDocument(namespace: string, key: string, record: DocumentRecord): Promise<number>
  deleteDocument(namespace: string, key: string): Promise<void>
  /**
   * Deletes the index pages and tag records nobody read or wrote for the
   * retention. The embedded store also does this periodically on its own; Redis
   * expires such keys itself, and here only drops repositories left without tags.
   * Resolves with how many records (or repository entries) went.
   */
  collectUnused(): Promise<number>

  getBlob(digest: string): Promise<BlobRecord | undefined>
  /** Records a newly stored blob (hits 0, lastAccess = createdAt = now); replaces an existing record. */
  putBlob(digest: string, size: number, now: number): Promise<void>
  /**
   * Marks a blob as served `hits` times (default 1), the last at `now`:
   * lastAccess = now, hits + `hits`. No-op when the blob is unknown.
   */
  touchBlob(digest: string, now: number, hits?: number): Promise<void>
  deleteBlob(digest: string): Promise<void>
  /** Up to `limit` blob records, least recently accessed first (eviction candidates). */
  leastRecentlyUsed(limit: number): Promise<BlobRecord[]>
  /** Number of blob records and the sum of their sizes. */
  blobTotals(): Promise<{ count: number; bytes: number }>

  /**
   * Pins (`pinned` true) or unpins a blob: eviction and retention never delete
   * a pinned blob. Independent of the blob record: a pin set before the blob
   * is stored, or kept while it is refetched, holds.
   */
  setPinned(digest: string, pinned: boolean): Promise<void>
  /** Every pinned digest. */
  pinned(): Promise<Set<string>>
  /** Stores an API token record (replacing one with the same hash). */
  putApiToken(record: ApiTokenRecord): Promise<void>
  /** The record of the token whose SHA-256 is `hash`. */
  getApiToken(hash: string): Promise<ApiTokenRecord | undefined>
  listApiTokens(): Promise<ApiTokenRecord[]>
  deleteApiToken(hash: string): Promise<void>

  /** Adds a batch of pull statistics; every replica adds to the same totals. */
  addUsage(batch: readonly UsageDelta[]): Promise<void>
  /** Pull statistics summed over the buckets `query` selects. */
  usage(query: UsageQuery): Promise<UsageAnswer>
  /** Records which subjects served which artifacts (kept 90 days after the last, MAX_REFERENCES_PER_ARTIFACT each). */
  addReferences(references: readonly ArtifactReference[]): Promise<void>
  /** The recorded references of each of `digests` (digests without any are left out). */
  references(digests: readonly string[]): Promise<Map<string, ArtifactReference[]>>

  /** Takes the lease when free or expired; true when `owner` now holds it. */
  acquireLease(name: string, owner: string, options: LeaseOptions): Promise<boolean>
  /** Releases the lease when `owner` holds it; otherwise does nothing. */
  releaseLease(name: string, owner: string): Promise<void>
  /** Who holds the lease now; undefined when it is free or expired. */
  leaseHolder(name: string): Promise<string | undefined>

  /** Resolves when the store answers; rejects with MetadataUnavailableError otherwise. */
  ping(): Promise<void>
  /** Flushes and releases resources. Further calls reject. */
  close(): Promise<void>
}
