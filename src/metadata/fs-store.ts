/**
 * The embedded metadata store: one process, files under `<storage.path>/meta/`.
 *
 *   snapshot.json   every small record (tags, blob records) at the last compaction
 *   journal.jsonl   one JSON line per change since then, appended in order
 *   pages/<h>.json  one file per document (DocumentRecord; megabytes for a PyPI page; read on demand)
 *   lock            the PID of the process using the directory
 *   statistics.json pull statistics (fs-statistics.ts)
 *
 * Small records live in memory and every change is appended to the journal
 * (fdatasync batched every JOURNAL_SYNC_INTERVAL_MS); opening replays snapshot then
 * journal, ignoring a torn last line left by a crash. Compaction rewrites the
 * snapshot (temp file, fsync, rename) and truncates the journal. Leases are in
 * memory: they only coordinate this one process.
 *
 * Unused records are collected (retention.ts): a page's last use is its file's
 * mtime, a tag's is kept beside it (journalled when it moves by more than
 * retention / RECORD_TOUCH_FRACTION). Every RECORD_SWEEP_INTERVAL_MS a sweep
 * walks pages/ one entry at a time (a streamed directory read, one stat each)
 * and the tag records in memory, and deletes what nobody used for the retention.
 */
import { createHash } from 'node:crypto'
import { mkdir, open, opendir, readFile, rename, rm, stat, type FileHandle } from 'node:fs/promises'
import { join } from 'node:path'
import { DirLock } from './dir-lock.ts'
import { FsStatistics } from './fs-statistics.ts'
import type { ArtifactReference, UsageAnswer, UsageDelta, UsageQuery } from './statistics.ts'
import { MetadataClosedError, MetadataCorruptError, MetadataUnavailableError } from './errors.ts'
import {
  RECORD_RETENTION_FLOOR_MS,
  RECORD_SWEEP_INTERVAL_MS,
  RECORD_TOUCH_FRACTION,
} from './retention.ts'
import type {
  ApiTokenRecord,
  BlobRecord,
  DocumentRecord,
  LeaseOptions,
  MetadataStore,
  SizedDocument,
  TagRecord,
} from './store.ts'

/** Journal changes are fdatasync'ed at least this often. */
export const JOURNAL_SYNC_INTERVAL_MS = 100
/** Compaction happens once the journal has this many lines and more than twice the live records. */
const COMPACT_MIN_LINES = 10_000

type TagKey = [string, string, string]

// Journals from before counters were dropped may hold { op: 'count' } lines: #apply ignores them.
type Change =
  // `at`: when the tag was written (its last use); journals from before it fall back to fetchedAt.
  | { op: 'tag'; k: TagKey; v: TagRecord; at?: number }
  | { op: 'untag'; k: TagKey }
  | { op: 'used'; k: TagKey; at: number }
  | { op: 'blob'; d: string; size: number; now: number }
  | { op: 'touch'; d: string; now: number; hits?: number }
  | { op: 'unblob'; d: string }
  | { op: 'pin'; d: string }
  | { op: 'unpin'; d: string }
  | { op: 'token'; v: ApiTokenRecord }
  | { op: 'untoken'; h: string }

interface Snapshot {
  version: 1
  tags: [string, TagRecord][]
  /** Last use of each tag record (absent in snapshots from before collection: fetchedAt stands in). */
  tagUse?: [string, number][]
  blobs: BlobRecord[]
  /** Pinned digests (absent in snapshots from before pins). */
  pins?: string[]
  /** API tokens (absent in snapshots from before them). */
  apiTokens?: ApiTokenRecord[]
  /** Always empty: written so that an older pullthrough, which requires it, can still open the snapshot. */
  counters: Record<string, never>
}

interface Warner {
  warn(obj: object, msg: string): void
}

export interface FsStoreOptions {
  readonly logger?: Warner
  readonly now?: () => number
  /** Records nobody used for this long are collected (default: RECORD_RETENTION_FLOOR_MS). */
  readonly recordRetentionMs?: number
  /** Called with the operation's name whenever the store fails (for the error metric). */
  readonly onError?: (operation: string) => void
  /** How often collectUnused runs on its own (default RECORD_SWEEP_INTERVAL_MS). */
  readonly sweepIntervalMs?: number
}

/** A tag record's last use, and the last use the journal knows. */
interface TagUse {
  at: number
  saved: number
}

const SEP = '\u0000'

export class FsMetadataStore implements MetadataStore {
  readonly kind = 'fs'
  readonly #tags = new Map<string, TagRecord>()
  readonly #tagUse = new Map<string, TagUse>()
  readonly #blobs = new Map<string, BlobRecord>()
  readonly #pins = new Set<string>()
  readonly #apiTokens = new Map<string, ApiTokenRecord>()
  readonly #leases = new Map<string, { owner: string; expiresAt: number }>()
  #journal: FileHandle
  #journalLines = 0
  #queue: Promise<void> = Promise.resolve()
  #dirty = false
  #syncTimer: NodeJS.Timeout | undefined
  #closed = false
  readonly #now: () => number
  readonly #lock: DirLock
  readonly #retentionMs: number
  readonly #onError: (operation: string) => void
  readonly #logger: Warner | undefined
  /** Per page file: the rename that replaces it, or the sweep deciding to delete it. */
  readonly #pageLocks = new Map<string, Promise<void>>()
  #sweeping: Promise<number> | undefined
  #statistics: FsStatistics | undefined
  #sweepTimer: NodeJS.Timeout | undefined

  private constructor(
    private readonly dir: string,
    journal: FileHandle,
    lock: DirLock,
    options: FsStoreOptions,
  ) {
    this.#journal = journal
    this.#lock = lock
    this.#now = options.now ?? Date.now
    this.#retentionMs = options.recordRetentionMs ?? RECORD_RETENTION_FLOOR_MS
    this.#onError = options.onError ?? (() => undefined)
    this.#logger = options.logger
  }

  /** Opens (creating) the store in `dir`; fails with MetadataLockedError if another live process uses it. */
  static async open(dir: string, options: FsStoreOptions = {}): Promise<FsMetadataStore> {
    await mkdir(join(dir, 'pages'), { recursive: true })
    const lock = await DirLock.take(join(dir, 'lock'))
    let journal: FileHandle
    try {
      journal = await open(join(dir, 'journal.jsonl'), 'a+')
    } catch (error) {
      await lock.release()
      throw error
    }
    const store = new FsMetadataStore(dir, journal, lock, options)
    try {
      await store.#load(options.logger)
      store.#statistics = await FsStatistics.open(dir, store.#now)
    } catch (error) {
      await journal.close()
      await lock.release()
      throw error
    }
    store.#sweepTimer = setInterval(() => {
      // Failures are counted and logged by collectUnused; the next round tries again.
      store.collectUnused().catch(() => undefined)
    }, options.sweepIntervalMs ?? RECORD_SWEEP_INTERVAL_MS).unref()
    return store
  }

  async getTag(registry: string, repository: string, tag: string): Promise<TagRecord | undefined> {
    this.#check()
    const key = tagKey(registry, repository, tag)
    const record = this.#tags.get(key)
    const use = this.#tagUse.get(key)
    if (record && use) {
      const now = this.#now()
      use.at = Math.max(use.at, now)
      if (now - use.saved >= this.#touchIntervalMs()) {
        // Not awaited: the reader need not wait for the journal. A failure is counted in #enqueue.
        this.#change({ op: 'used', k: [registry, repository, tag], at: now }).catch(() => undefined)
      }
    }
    return Promise.resolve(record)
  }

  async putTag(
    registry: string,
    repository: string,
    tag: string,
    record: TagRecord,
  ): Promise<void> {
    await this.#change({ op: 'tag', k: [registry, repository, tag], v: record, at: this.#now() })
  }

  async deleteTag(registry: string, repository: string, tag: string): Promise<void> {
    await this.#change({ op: 'untag', k: [registry, repository, tag] })
  }

  async listRepositories(registry: string): Promise<string[]> {
    this.#check()
    const repos = new Set<string>()
    for (const key of this.#tags.keys()) {
      const [reg, repo] = key.split(SEP)
      if (reg === registry && repo !== undefined) repos.add(repo)
    }
    return Promise.resolve([...repos].sort())
  }

  async listTags(registry: string, repository: string): Promise<Map<string, TagRecord>> {
    this.#check()
    const prefix = tagKey(registry, repository, '')
    const tags = new Map<string, TagRecord>()
    for (const [key, record] of this.#tags)
      if (key.startsWith(prefix)) tags.set(key.slice(prefix.length), record)
    return Promise.resolve(tags)
  }

  async getDocument(namespace: string, key: string): Promise<DocumentRecord | undefined> {
    return (await this.readDocument(namespace, key))?.record
  }

  async readDocument(namespace: string, key: string): Promise<SizedDocument | undefined> {
    this.#check()
    const path = this.#pagePath(namespace, key)
    try {
      const fh = await open(path, 'r')
      try {
        const { mtimeMs } = await fh.stat()
        const text = await fh.readFile()
        const record = JSON.parse(text.toString('utf8')) as DocumentRecord
        const now = this.#now()
        // The mtime is the page's last use; refreshed under the page's lock so a sweep never
        // deletes a page between deciding it is old and this read.
        if (now - mtimeMs >= this.#touchIntervalMs()) {
          await this.#withPage(path, () => fh.utimes(new Date(now), new Date(now)))
        }
        return { record, bytes: text.length }
      } finally {
        await fh.close()
      }
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined
      if (error instanceof SyntaxError) return undefined
      this.#onError('getDocument')
      throw new MetadataUnavailableError('fs', 'getDocument', { cause: error })
    }
  }

  async putDocument(namespace: string, key: string, record: DocumentRecord): Promise<number> {
    this.#check()
    const path = this.#pagePath(namespace, key)
    const temp = `${path}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`
    const text = Buffer.from(JSON.stringify(record))
    try {
      const fh = await open(temp, 'w')
      try {
        await fh.writeFile(text)
        // The mtime is the last use; set from the store's clock (tests move it).
        const now = new Date(this.#now())
        await fh.utimes(now, now)
        await fh.sync()
      } finally {
        await fh.close()
      }
      await this.#withPage(path, () => rename(temp, path))
      return text.length
    } catch (error) {
      // The temp file may not exist, or its directory may be what failed.
      await rm(temp, { force: true }).catch(() => undefined)
      this.#onError('putDocument')
      throw new MetadataUnavailableError('fs', 'putDocument', { cause: error })
    }
  }

  async deleteDocument(namespace: string, key: string): Promise<void> {
    this.#check()
    const path = this.#pagePath(namespace, key)
    try {
      await this.#withPage(path, () => rm(path, { force: true }))
    } catch (error) {
      this.#onError('deleteDocument')
      throw new MetadataUnavailableError('fs', 'deleteDocument', { cause: error })
    }
  }

  async collectUnused(): Promise<number> {
    this.#check()
    this.#sweeping ??= this.#sweep().finally(() => {
      this.#sweeping = undefined
    })
    return this.#sweeping
  }

  async getBlob(digest: string): Promise<BlobRecord | undefined> {
    this.#check()
    return Promise.resolve(this.#blobs.get(digest))
  }

  async putBlob(digest: string, size: number, now: number): Promise<void> {
    await this.#change({ op: 'blob', d: digest, size, now })
  }

  async touchBlob(digest: string, now: number, hits = 1): Promise<void> {
    this.#check()
    if (!this.#blobs.has(digest)) return
    // One hit, the common case, keeps the journal line as short as before.
    await this.#change(
      hits === 1 ? { op: 'touch', d: digest, now } : { op: 'touch', d: digest, now, hits },
    )
  }

  async deleteBlob(digest: string): Promise<void> {
    await this.#change({ op: 'unblob', d: digest })
  }

  async setPinned(digest: string, pinned: boolean): Promise<void> {
    this.#check()
    if (this.#pins.has(digest) === pinned) return
    await this.#change({ op: pinned ? 'pin' : 'unpin', d: digest })
  }

  async pinned(): Promise<Set<string>> {
    this.#check()
    return Promise.resolve(new Set(this.#pins))
  }

  async putApiToken(record: ApiTokenRecord): Promise<void> {
    await this.#change({ op: 'token', v: record })
  }

  async getApiToken(hash: string): Promise<ApiTokenRecord | undefined> {
    this.#check()
    return Promise.resolve(this.#apiTokens.get(hash))
  }

  async listApiTokens(): Promise<ApiTokenRecord[]> {
    this.#check()
    return Promise.resolve([...this.#apiTokens.values()])
  }

  async deleteApiToken(hash: string): Promise<void> {
    this.#check()
    if (!this.#apiTokens.has(hash)) return
    await this.#change({ op: 'untoken', h: hash })
  }

  async leastRecentlyUsed(limit: number): Promise<BlobRecord[]> {
    this.#check()
    return Promise.resolve(
      [...this.#blobs.values()]
        .sort((a, b) => a.lastAccess - b.lastAccess || (a.digest < b.digest ? -1 : 1))
        .slice(0, limit),
    )
  }

  async blobTotals(): Promise<{ count: number; bytes: number }> {
    this.#check()
    let bytes = 0
    for (const record of this.#blobs.values()) bytes += record.size
    return Promise.resolve({ count: this.#blobs.size, bytes })
  }

  async acquireLease(name: string, owner: string, options: LeaseOptions): Promise<boolean> {
    this.#check()
    const now = this.#now()
    const current = this.#leases.get(name)
    if (current && current.expiresAt > now && current.owner !== owner) return Promise.resolve(false)
    this.#leases.set(name, { owner, expiresAt: now + options.ttlMs })
    return Promise.resolve(true)
  }

  async releaseLease(name: string, owner: string): Promise<void> {
    this.#check()
    if (this.#leases.get(name)?.owner === owner) this.#leases.delete(name)
    return Promise.resolve()
  }

  async leaseHolder(name: string): Promise<string | undefined> {
    this.#check()
    const current = this.#leases.get(name)
    return Promise.resolve(current && current.expiresAt > this.#now() ? current.owner : undefined)
  }

  async ping(): Promise<void> {
    this.#check()
    // The journal must still be writable for the store to be useful.
    await this.#enqueue(async () => {
      await this.#journal.stat()
    }, 'ping')
  }

  async addUsage(batch: readonly UsageDelta[]): Promise<void> {
    this.#check()
    if (batch.length === 0) return
    try {
      await this.#statistics?.add(batch)
    } catch (error) {
      this.#onError('addUsage')
      throw new MetadataUnavailableError('fs', 'addUsage', { cause: error })
    }
  }

  async addReferences(references: readonly ArtifactReference[]): Promise<void> {
    this.#check()
    if (references.length === 0) return
    try {
      await this.#statistics?.addReferences(references)
    } catch (error) {
      this.#onError('addReferences')
      throw new MetadataUnavailableError('fs', 'addReferences', { cause: error })
    }
  }

  references(digests: readonly string[]): Promise<Map<string, ArtifactReference[]>> {
    const answer = this.#closed ? undefined : this.#statistics?.references(digests)
    return answer ? Promise.resolve(answer) : Promise.reject(new MetadataClosedError('fs'))
  }

  usage(query: UsageQuery): Promise<UsageAnswer> {
    const answer = this.#closed ? undefined : this.#statistics?.usage(query)
    return answer ? Promise.resolve(answer) : Promise.reject(new MetadataClosedError('fs'))
  }

  async close(): Promise<void> {
    if (this.#closed) return
    clearInterval(this.#sweepTimer)
    await this.#sweeping?.catch(() => undefined)
    clearTimeout(this.#syncTimer)
    await this.#queue
    await this.#enqueue(() => this.#compact(), 'close')
    this.#closed = true
    await this.#journal.close()
    await this.#lock.release()
  }

  #check(): void {
    if (this.#closed) throw new MetadataClosedError('fs')
  }

  #touchIntervalMs(): number {
    return this.#retentionMs / RECORD_TOUCH_FRACTION
  }

  /** Runs `task` after any other task on the same page file (a rename, a sweep's decision). */
  async #withPage<T>(path: string, task: () => Promise<T>): Promise<T> {
    const previous = this.#pageLocks.get(path) ?? Promise.resolve()
    const run = previous.then(task)
    const done = run.then(
      () => undefined,
      () => undefined,
    )
    this.#pageLocks.set(path, done)
    try {
      return await run
    } finally {
      if (this.#pageLocks.get(path) === done) this.#pageLocks.delete(path)
    }
  }

  /** One collection round: tag records in memory, then pages/ one entry at a time. */
  async #sweep(): Promise<number> {
    const cutoff = this.#now() - this.#retentionMs
    let collected = 0
    try {
      for (const [key, use] of this.#tagUse) {
        if (use.at >= cutoff) continue
        await this.#change({ op: 'untag', k: key.split(SEP) as TagKey })
        collected++
      }
      const dir = join(this.dir, 'pages')
      // A streamed read: the directory is never listed into memory whole.
      for await (const entry of await opendir(dir)) {
        if (this.#closed) break
        const path = join(dir, entry.name)
        // Temp files left by a crash mid-write are collected as well.
        const gone = await this.#withPage(path, async () => {
          const info = await stat(path).catch(() => undefined)
          if (!info?.isFile() || info.mtimeMs >= cutoff) return false
          await rm(path, { force: true })
          return true
        })
        if (gone) collected++
      }
    } catch (error) {
      this.#onError('collectUnused')
      this.#logger?.warn({ err: error }, 'could not collect unused metadata records')
      throw new MetadataUnavailableError('fs', 'collectUnused', { cause: error })
    }
    return collected
  }

  #pagePath(namespace: string, key: string): string {
    const name = createHash('sha256').update(`${namespace}${SEP}${key}`).digest('hex')
    return join(this.dir, 'pages', `${name}.json`)
  }

  /** Applies a change in memory and appends it to the journal, in call order. */
  async #change(change: Change): Promise<void> {
    this.#check()
    this.#apply(change)
    const line = `${JSON.stringify(change)}\n`
    await this.#enqueue(async () => {
      await this.#journal.appendFile(line)
      this.#journalLines++
      this.#scheduleSync()
      if (
        this.#journalLines >= COMPACT_MIN_LINES &&
        this.#journalLines >
          2 * (this.#tags.size + this.#blobs.size + this.#pins.size + this.#apiTokens.size)
      ) {
        await this.#compact()
      }
    }, change.op)
  }

  async #enqueue(task: () => Promise<void>, operation: string): Promise<void> {
    const run = this.#queue.then(task)
    this.#queue = run.catch(() => undefined)
    try {
      await run
    } catch (error) {
      this.#onError(operation)
      throw new MetadataUnavailableError('fs', operation, { cause: error })
    }
  }

  #scheduleSync(): void {
    this.#dirty = true
    this.#syncTimer ??= setTimeout(() => {
      this.#syncTimer = undefined
      if (!this.#dirty || this.#closed) return
      this.#dirty = false
      this.#enqueue(() => this.#journal.datasync(), 'sync').catch(() => undefined)
    }, JOURNAL_SYNC_INTERVAL_MS)
  }

  #apply(change: Change): void {
    switch (change.op) {
      case 'tag': {
        const at = change.at ?? change.v.fetchedAt
        this.#tags.set(tagKey(...change.k), change.v)
        this.#tagUse.set(tagKey(...change.k), { at, saved: at })
        break
      }
      case 'untag':
        this.#tags.delete(tagKey(...change.k))
        this.#tagUse.delete(tagKey(...change.k))
        break
      case 'used': {
        const use = this.#tagUse.get(tagKey(...change.k))
        if (use) {
          use.at = Math.max(use.at, change.at)
          use.saved = Math.max(use.saved, change.at)
        }
        break
      }
      case 'blob':
        this.#blobs.set(change.d, {
          digest: change.d,
          size: change.size,
          createdAt: change.now,
          lastAccess: change.now,
          hits: 0,
        })
        break
      case 'touch': {
        const record = this.#blobs.get(change.d)
        if (record)
          this.#blobs.set(change.d, {
            ...record,
            lastAccess: change.now,
            hits: record.hits + (change.hits ?? 1),
          })
        break
      }
      case 'unblob':
        this.#blobs.delete(change.d)
        break
      case 'pin':
        this.#pins.add(change.d)
        break
      case 'unpin':
        this.#pins.delete(change.d)
        break
      case 'token':
        this.#apiTokens.set(change.v.hash, change.v)
        break
      case 'untoken':
        this.#apiTokens.delete(change.h)
        break
    }
  }

  async #load(logger: Warner | undefined): Promise<void> {
    try {
      const snapshot = JSON.parse(
        await readFile(join(this.dir, 'snapshot.json'), 'utf8'),
      ) as Snapshot
      const used = new Map(snapshot.tagUse ?? [])
      for (const [key, record] of snapshot.tags) {
        this.#tags.set(key, record)
        const at = used.get(key) ?? record.fetchedAt
        this.#tagUse.set(key, { at, saved: at })
      }
      for (const record of snapshot.blobs) this.#blobs.set(record.digest, record)
      for (const digest of snapshot.pins ?? []) this.#pins.add(digest)
      for (const record of snapshot.apiTokens ?? []) this.#apiTokens.set(record.hash, record)
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') {
        throw new MetadataCorruptError('fs', 'snapshot.json cannot be read', { cause: error })
      }
    }
    const text = await readFile(join(this.dir, 'journal.jsonl'), 'utf8')
    const lines = text.split('\n')
    // The last element is '' after a clean append, or a torn line after a crash.
    const torn = lines.pop()
    if (torn)
      logger?.warn({ bytes: torn.length }, 'ignoring a torn last line in the metadata journal')
    for (const [i, line] of lines.entries()) {
      try {
        this.#apply(JSON.parse(line) as Change)
      } catch {
        logger?.warn({ line: i + 1 }, 'skipping an unreadable line in the metadata journal')
      }
    }
    this.#journalLines = lines.length
    // Start from a clean journal: the torn line must not precede new appends.
    if (torn) await this.#compact()
  }

  /** Writes the snapshot (temp, fsync, rename) and empties the journal. */
  async #compact(): Promise<void> {
    const snapshot: Snapshot = {
      version: 1,
      tags: [...this.#tags.entries()],
      tagUse: [...this.#tagUse.entries()].map(([key, use]) => [key, use.at]),
      blobs: [...this.#blobs.values()],
      pins: [...this.#pins],
      apiTokens: [...this.#apiTokens.values()],
      counters: {},
    }
    const temp = join(this.dir, 'snapshot.json.tmp')
    const fh = await open(temp, 'w')
    try {
      await fh.writeFile(JSON.stringify(snapshot))
      await fh.sync()
    } finally {
      await fh.close()
    }
    await rename(temp, join(this.dir, 'snapshot.json'))
    await this.#journal.truncate(0)
    await this.#journal.sync()
    this.#journalLines = 0
    this.#dirty = false
  }
}

function tagKey(registry: string, repository: string, tag: string): string {
  return `${registry}${SEP}${repository}${SEP}${tag}`
}
