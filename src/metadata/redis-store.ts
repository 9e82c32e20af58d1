/**
 * The shared metadata store for replicas: Redis through ioredis.
 *
 * It fails fast instead of hanging: no offline queue (commands while
 * disconnected reject at once), bounded connect and command timeouts, no
 * per-command retries. The client keeps reconnecting in the background with a
 * capped backoff, so the server recovers on its own when Redis is back. Every
 * failure surfaces as MetadataUnavailableError.
 *
 * Keys (after keyPrefix; names are URI-encoded so ':' cannot collide):
 *   tag:<registry>:<repo>:<tag>   JSON TagRecord                 } expire after the record
 *   tags:<registry>:<repo>        set of cached tags             } retention (retention.ts),
 *   repos:<registry>              set of repositories with tags  } renewed by every read
 *   page:<namespace>:<key>        JSON DocumentRecord            } and write (GETEX / SET PX)
 *   blob:<digest>                 hash size, createdAt, lastAccess, hits
 *   lru                           sorted set digest -> lastAccess
 *   blobbytes                     sum of blob sizes
 *   lease:<name>                  owner, with a TTL
 *   stats*                        pull statistics (redis-statistics.ts)
 *
 * A repository whose tags all expired may linger in its registry's set until
 * listRepositories or collectUnused (every RECORD_SWEEP_INTERVAL_MS) meets it.
 */
import { Redis } from 'ioredis'
import { MetadataClosedError, MetadataUnavailableError } from './errors.ts'
import { RedisStatistics } from './redis-statistics.ts'
import { RECORD_RETENTION_FLOOR_MS, RECORD_SWEEP_INTERVAL_MS } from './retention.ts'
import { createRedisClient, type RedisTarget } from './redis-connection.ts'
import type { ArtifactReference, UsageAnswer, UsageDelta, UsageQuery } from './statistics.ts'
import type {
  ApiTokenRecord,
  BlobRecord,
  DocumentRecord,
  LeaseOptions,
  MetadataStore,
  SizedDocument,
  TagRecord,
} from './store.ts'

export interface RedisStoreOptions extends RedisTarget {
  readonly keyPrefix?: string
  readonly connectTimeoutMs: number
  readonly commandTimeoutMs: number
  readonly logger?: { warn(obj: object, msg: string): void; info(obj: object, msg: string): void }
  /** Pages and tag records nobody used for this long expire (default: RECORD_RETENTION_FLOOR_MS). */
  readonly recordRetentionMs?: number
  /** Called with the operation's name whenever a call fails (for the error metric). */
  readonly onError?: (operation: string) => void
  /** Milliseconds since the epoch (statistics retention); tests pass a controllable clock. */
  readonly now?: () => number
}

/** Longest pause between reconnection attempts. */
const MAX_RECONNECT_DELAY_MS = 2000
/** Keys looked at per SCAN step when pruning repository sets. */
const SCAN_COUNT = 100

const enc = encodeURIComponent

// Lua keeps multi-key updates atomic across replicas.
const PUT_BLOB = `
local old = redis.call('HGET', KEYS[1], 'size')
if old then redis.call('DECRBY', KEYS[3], old) end
redis.call('HSET', KEYS[1], 'size', ARGV[2], 'createdAt', ARGV[3], 'lastAccess', ARGV[3], 'hits', 0)
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
redis.call('INCRBY', KEYS[3], ARGV[2])
return 1`
const TOUCH_BLOB = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'lastAccess', ARGV[2])
redis.call('HINCRBY', KEYS[1], 'hits', ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
return 1`
const DELETE_BLOB = `
local old = redis.call('HGET', KEYS[1], 'size')
if old then redis.call('DECRBY', KEYS[3], old) end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return 1`
const ACQUIRE_LEASE = `
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1`
const RELEASE_LEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1`
const DELETE_TAG = `
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[1])
if redis.call('SCARD', KEYS[2]) == 0 then redis.call('SREM', KEYS[3], ARGV[2]) end
return 1`

export class RedisMetadataStore implements MetadataStore {
  readonly kind = 'redis'
  readonly #redis: Redis
  readonly #prefix: string
  /** Record retention as Redis wants it: whole milliseconds, at least 1. */
  readonly #retentionMs: number
  readonly #statistics: RedisStatistics
  #sweepTimer: NodeJS.Timeout | undefined
  #closed = false
  #down = false

  private constructor(private readonly options: RedisStoreOptions) {
    this.#prefix = options.keyPrefix ?? 'pullthrough:'
    this.#statistics = new RedisStatistics((suffix) => this.#key(suffix), options.now ?? Date.now)
    this.#retentionMs = Math.max(
      1,
      Math.round(options.recordRetentionMs ?? RECORD_RETENTION_FLOOR_MS),
    )
    this.#redis = createRedisClient(options, {
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      connectTimeout: options.connectTimeoutMs,
      commandTimeout: options.commandTimeoutMs,
      retryStrategy: (times) => Math.min(times * 100, MAX_RECONNECT_DELAY_MS),
      // The readiness check would queue commands before 'ready'; ping() is ours.
      enableReadyCheck: true,
    })
    // Without an 'error' listener ioredis prints every failed reconnect; log once per outage instead.
    this.#redis.on('error', () => undefined)
    this.#redis.on('close', () => {
      if (this.#down || this.#closed) return
      this.#down = true
      options.logger?.warn({}, 'redis unavailable; reconnecting')
    })
    this.#redis.on('ready', () => {
      if (this.#down) options.logger?.info({}, 'redis available again')
      this.#down = false
    })
  }

  /** Connects, waiting up to connectTimeoutMs; a Redis that is down does not stop the server from starting. */
  static async connect(options: RedisStoreOptions): Promise<RedisMetadataStore> {
    const store = new RedisMetadataStore(options)
    let timer: NodeJS.Timeout | undefined
    try {
      await Promise.race([
        store.#redis.connect(),
        new Promise((_resolve, reject) => {
          timer = setTimeout(() => reject(new Error('connect timeout')), options.connectTimeoutMs)
        }),
      ])
    } catch (error) {
      options.logger?.warn(
        { err: { message: (error as Error).message } },
        'redis not reachable at start-up; will keep trying',
      )
    } finally {
      clearTimeout(timer)
    }
    store.#sweepTimer = setInterval(() => {
      // A failure is counted through onError; the next round tries again.
      store.collectUnused().catch(() => undefined)
    }, RECORD_SWEEP_INTERVAL_MS).unref()
    return store
  }

  async getTag(registry: string, repository: string, tag: string): Promise<TagRecord | undefined> {
    const ttl = this.#retentionMs
    const results = await this.#call('getTag', (r) =>
      r
        .multi()
        .getex(this.#tagKey(registry, repository, tag), 'PX', ttl)
        .pexpire(this.#tagsKey(registry, repository), ttl)
        .pexpire(this.#reposKey(registry), ttl)
        .exec(),
    )
    const value = results?.[0]?.[1]
    return typeof value === 'string' ? (JSON.parse(value) as TagRecord) : undefined
  }

  async putTag(
    registry: string,
    repository: string,
    tag: string,
    record: TagRecord,
  ): Promise<void> {
    const ttl = this.#retentionMs
    await this.#call('putTag', (r) =>
      r
        .multi()
        .set(this.#tagKey(registry, repository, tag), JSON.stringify(record), 'PX', ttl)
        .sadd(this.#tagsKey(registry, repository), tag)
        .pexpire(this.#tagsKey(registry, repository), ttl)
        .sadd(this.#reposKey(registry), repository)
        .pexpire(this.#reposKey(registry), ttl)
        .exec(),
    )
  }

  async deleteTag(registry: string, repository: string, tag: string): Promise<void> {
    await this.#call('deleteTag', (r) =>
      r.eval(
        DELETE_TAG,
        3,
        this.#tagKey(registry, repository, tag),
        this.#tagsKey(registry, repository),
        this.#reposKey(registry),
        tag,
        repository,
      ),
    )
  }

  async listRepositories(registry: string): Promise<string[]> {
    return (await this.#prune('listRepositories', this.#reposKey(registry))).sort()
  }

  async listTags(registry: string, repository: string): Promise<Map<string, TagRecord>> {
    const names = await this.#call('listTags', (r) =>
      r.smembers(this.#tagsKey(registry, repository)),
    )
    const tags = new Map<string, TagRecord>()
    if (names.length === 0) return tags
    // GET, not GETEX: a listing is not a use and renews no retention.
    const values = await this.#call('listTags', (r) =>
      r.mget(...names.map((tag) => this.#tagKey(registry, repository, tag))),
    )
    for (const [i, tag] of names.entries()) {
      const value = values[i]
      // A member whose record expired has none.
      if (typeof value === 'string') tags.set(tag, JSON.parse(value) as TagRecord)
    }
    return tags
  }

  async getDocument(namespace: string, key: string): Promise<DocumentRecord | undefined> {
    return (await this.readDocument(namespace, key))?.record
  }

  async readDocument(namespace: string, key: string): Promise<SizedDocument | undefined> {
    const value = await this.#call('getDocument', (r) =>
      r.getex(this.#pageKey(namespace, key), 'PX', this.#retentionMs),
    )
    if (value === null) return undefined
    return { record: JSON.parse(value) as DocumentRecord, bytes: Buffer.byteLength(value) }
  }

  async putDocument(namespace: string, key: string, record: DocumentRecord): Promise<number> {
    const value = JSON.stringify(record)
    await this.#call('putDocument', (r) =>
      r.set(this.#pageKey(namespace, key), value, 'PX', this.#retentionMs),
    )
    return Buffer.byteLength(value)
  }

  async collectUnused(): Promise<number> {
    // Expired records are gone already; what is left is repositories whose tags all expired.
    const pattern = `${globEscape(this.#key('repos:'))}*`
    let cursor = '0'
    let pruned = 0
    do {
      const [next, keys] = await this.#call('collectUnused', (r) =>
        r.scan(cursor, 'MATCH', pattern, 'COUNT', SCAN_COUNT),
      )
      cursor = next
      for (const key of keys) {
        const before = await this.#call('collectUnused', (r) => r.scard(key))
        pruned += before - (await this.#prune('collectUnused', key)).length
      }
    } while (cursor !== '0')
    return pruned
  }

  async deleteDocument(namespace: string, key: string): Promise<void> {
    await this.#call('deleteDocument', (r) => r.del(this.#pageKey(namespace, key)))
  }

  async getBlob(digest: string): Promise<BlobRecord | undefined> {
    const hash = await this.#call('getBlob', (r) => r.hgetall(this.#key(`blob:${digest}`)))
    return toBlobRecord(digest, hash)
  }

  async putBlob(digest: string, size: number, now: number): Promise<void> {
    await this.#call('putBlob', (r) =>
      r.eval(PUT_BLOB, 3, ...this.#blobKeys(digest), digest, size, now),
    )
  }

  async touchBlob(digest: string, now: number, hits = 1): Promise<void> {
    await this.#call('touchBlob', (r) =>
      r.eval(TOUCH_BLOB, 2, this.#key(`blob:${digest}`), this.#key('lru'), digest, now, hits),
    )
  }

  async deleteBlob(digest: string): Promise<void> {
    await this.#call('deleteBlob', (r) => r.eval(DELETE_BLOB, 3, ...this.#blobKeys(digest), digest))
  }

  async setPinned(digest: string, pinned: boolean): Promise<void> {
    await this.#call('setPinned', (r) =>
      pinned ? r.sadd(this.#key('pins'), digest) : r.srem(this.#key('pins'), digest),
    )
  }

  async pinned(): Promise<Set<string>> {
    return new Set(await this.#call('pinned', (r) => r.smembers(this.#key('pins'))))
  }

  async putApiToken(record: ApiTokenRecord): Promise<void> {
    await this.#call('putApiToken', (r) =>
      r.hset(this.#key('api-tokens'), record.hash, JSON.stringify(record)),
    )
  }

  async getApiToken(hash: string): Promise<ApiTokenRecord | undefined> {
    const json = await this.#call('getApiToken', (r) => r.hget(this.#key('api-tokens'), hash))
    return json === null ? undefined : (JSON.parse(json) as ApiTokenRecord)
  }

  async listApiTokens(): Promise<ApiTokenRecord[]> {
    const all = await this.#call('listApiTokens', (r) => r.hvals(this.#key('api-tokens')))
    return all.map((json) => JSON.parse(json) as ApiTokenRecord)
  }

  async deleteApiToken(hash: string): Promise<void> {
    await this.#call('deleteApiToken', (r) => r.hdel(this.#key('api-tokens'), hash))
  }

  async leastRecentlyUsed(limit: number): Promise<BlobRecord[]> {
    if (limit <= 0) return []
    const digests = await this.#call('leastRecentlyUsed', (r) =>
      r.zrange(this.#key('lru'), 0, limit - 1),
    )
    if (digests.length === 0) return []
    const results = await this.#call('leastRecentlyUsed', (r) => {
      const pipeline = r.pipeline()
      for (const digest of digests) pipeline.hgetall(this.#key(`blob:${digest}`))
      return pipeline.exec()
    })
    const records: BlobRecord[] = []
    for (const [i, digest] of digests.entries()) {
      const record = toBlobRecord(digest, results?.[i]?.[1] as Record<string, string> | undefined)
      if (record) records.push(record)
    }
    return records
  }

  async blobTotals(): Promise<{ count: number; bytes: number }> {
    const [count, bytes] = await this.#call('blobTotals', (r) =>
      Promise.all([r.zcard(this.#key('lru')), r.get(this.#key('blobbytes'))]),
    )
    return { count, bytes: Number(bytes ?? 0) }
  }

  async acquireLease(name: string, owner: string, options: LeaseOptions): Promise<boolean> {
    const result = await this.#call('acquireLease', (r) =>
      r.eval(
        ACQUIRE_LEASE,
        1,
        this.#key(`lease:${enc(name)}`),
        owner,
        Math.max(1, Math.round(options.ttlMs)),
      ),
    )
    return result === 1
  }

  async releaseLease(name: string, owner: string): Promise<void> {
    await this.#call('releaseLease', (r) =>
      r.eval(RELEASE_LEASE, 1, this.#key(`lease:${enc(name)}`), owner),
    )
  }

  async leaseHolder(name: string): Promise<string | undefined> {
    const holder = await this.#call('leaseHolder', (r) => r.get(this.#key(`lease:${enc(name)}`)))
    return holder ?? undefined
  }

  async addUsage(batch: readonly UsageDelta[]): Promise<void> {
    if (batch.length === 0) return
    await this.#call('addUsage', (r) => this.#statistics.add(r, batch))
  }

  async addReferences(references: readonly ArtifactReference[]): Promise<void> {
    if (references.length === 0) return
    await this.#call('addReferences', (r) => this.#statistics.addReferences(r, references))
  }

  async references(digests: readonly string[]): Promise<Map<string, ArtifactReference[]>> {
    return this.#call('references', (r) => this.#statistics.references(r, digests))
  }

  async usage(query: UsageQuery): Promise<UsageAnswer> {
    return this.#call('usage', (r) => this.#statistics.usage(r, query))
  }

  async ping(): Promise<void> {
    await this.#call('ping', (r) => r.ping())
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    clearInterval(this.#sweepTimer)
    if (this.#redis.status === 'ready') {
      // Replies to commands sent before are read first; failure falls through to the hard way.
      await this.#call('close', (r) => r.quit(), true).catch(() => undefined)
    }
    // Also ends what quit leaves open: the sentinel connections that watch for failovers.
    this.#redis.disconnect()
  }

  async #call<T>(operation: string, fn: (redis: Redis) => Promise<T>, closing = false): Promise<T> {
    if (this.#closed && !closing) throw new MetadataClosedError('redis')
    try {
      return await fn(this.#redis)
    } catch (error) {
      this.options.onError?.(operation)
      throw new MetadataUnavailableError('redis', operation, { cause: error })
    }
  }

  #key(suffix: string): string {
    return `${this.#prefix}${suffix}`
  }

  #tagKey(registry: string, repository: string, tag: string): string {
    return this.#key(`tag:${enc(registry)}:${enc(repository)}:${enc(tag)}`)
  }

  #tagsKey(registry: string, repository: string): string {
    return this.#key(`tags:${enc(registry)}:${enc(repository)}`)
  }

  #reposKey(registry: string): string {
    return this.#key(`repos:${enc(registry)}`)
  }

  /**
   * The members of a `repos:<registry>` set that still have tags; the others
   * (all their tag records expired) are removed from the set.
   */
  async #prune(operation: string, reposKey: string): Promise<string[]> {
    const repos = await this.#call(operation, (r) => r.smembers(reposKey))
    if (repos.length === 0) return []
    const registry = decodeURIComponent(reposKey.slice(this.#key('repos:').length))
    const exists = await this.#call(operation, (r) => {
      const pipeline = r.pipeline()
      for (const repo of repos) pipeline.exists(this.#tagsKey(registry, repo))
      return pipeline.exec()
    })
    // Only a definite 0 removes a member; a failed EXISTS keeps it.
    const gone = repos.filter((_repo, i) => exists?.[i]?.[1] === 0)
    const live = repos.filter((_repo, i) => exists?.[i]?.[1] !== 0)
    if (gone.length > 0) await this.#call(operation, (r) => r.srem(reposKey, ...gone))
    return live
  }

  #pageKey(namespace: string, key: string): string {
    return this.#key(`page:${enc(namespace)}:${enc(key)}`)
  }

  #blobKeys(digest: string): [string, string, string] {
    return [this.#key(`blob:${digest}`), this.#key('lru'), this.#key('blobbytes')]
  }
}

/** `text` as a literal in a SCAN MATCH pattern. */
function globEscape(text: string): string {
  return text.replace(/[*?[\]\\]/g, (c) => `\\${c}`)
}

function toBlobRecord(
  digest: string,
  hash: Record<string, string> | undefined,
): BlobRecord | undefined {
  if (!hash || hash.size === undefined) return undefined
  return {
    digest,
    size: Number(hash.size),
    createdAt: Number(hash.createdAt),
    lastAccess: Number(hash.lastAccess),
    hits: Number(hash.hits),
  }
}
