/**
 * The read-through cache both protocols use for content addressed by digest:
 * a hit is served from the blob store (hashed on the way out when
 * storage.verifyOnRead is on); a miss starts a fill, or joins the one already
 * running for that digest from the same source pool (registry, or index file
 * host), and streams from it as bytes arrive.
 *
 * Fills are keyed by digest and pool, so one registry's slow 404 cannot fail a
 * pull through another, and a Python file never joins a Docker blob's fill.
 * Within a pool, repositories share fills; a client whose joined fill ended in
 * not-found or an auth refusal asks once more with its own source, since the
 * blob may be absent from or private to the other repository.
 */
import { Readable } from 'node:stream'
import type { MetadataStore } from '../metadata/store.ts'
import type { Logger } from '../observability/logger.ts'
import type { Metrics } from '../observability/metrics.ts'
import type { BlobStorage } from '../storage/blob-storage.ts'
import { parseDigest, type Digest } from '../storage/digest.ts'
import { DigestMismatchError } from '../storage/errors.ts'
import { UpstreamAuthError, UpstreamNotFoundError } from '../upstream/errors.ts'
import type { UpstreamPool } from '../upstream/pool.ts'
import type { AccessLog } from './access-log.ts'
import { BlobUnknownUpstreamError } from './errors.ts'
import { Fill, type FillRouter, type FillSource } from './fill.ts'
import { InUse } from './in-use.ts'
import { quarantine } from './quarantine.ts'
import type { ServedBody } from './served-body.ts'

/** After a storage write failure, fills stream through without trying the disk for this long. */
export const STORAGE_RETRY_AFTER_MS = 30_000

export interface ReadThroughDeps {
  readonly blobs: BlobStorage
  readonly metadata: MetadataStore
  readonly metrics: Metrics
  readonly logger: Logger
  readonly verifyOnRead: boolean
  /** Where hits are recorded for LRU eviction (batched). */
  readonly accesses: AccessLog
  readonly now: () => number
  /** Called after each committed fill (eviction checks). */
  readonly onStored?: (size: number) => void
  /** storage.maxBlobSize in bytes; without it (tests) blobs of any size are fetched. */
  readonly maxBlobBytes?: number
  /** Replicas sharing fills (cluster): where each fill fetches from. */
  readonly router?: FillRouter
  /** storage.s3.redirect: a short-lived URL that GETs a stored blob straight from the bucket. */
  readonly presign?: (digest: Digest) => Promise<string>
}

export interface ServeOptions {
  /** Byte range [start, end] inclusive, as in an HTTP Range header. */
  readonly range?: { readonly start: number; readonly end?: number | undefined }
}

export interface ServedBlob {
  readonly cache: 'hit' | 'miss'
  /** Total size of the blob, when known before the body completes. */
  readonly size: number | undefined
  readonly body: ServedBody
  /** Mirror that served a miss. */
  readonly upstream: string | undefined
}

export class ReadThrough {
  /** Running fills by `<pool id> <digest>`. */
  readonly #fills = new Map<string, Fill>()
  /** A number per source pool, for the fill keys (pool names of the two protocols may coincide). */
  readonly #poolIds = new WeakMap<UpstreamPool, number>()
  #nextPoolId = 0
  #storageFailedAt = Number.NEGATIVE_INFINITY
  readonly inUse = new InUse()

  constructor(private readonly deps: ReadThroughDeps) {}

  /** Opens the blob for reading; `source` says where to get it on a miss. */
  async serve(
    digestInput: string,
    source: FillSource,
    options: ServeOptions = {},
  ): Promise<ServedBlob> {
    const digest = parseDigest(digestInput)
    return this.#inUseWhileOpen(
      digest,
      async () =>
        (await this.#fromStore(digest, options)) ?? (await this.#fromFill(digest, source, options)),
    )
  }

  /**
   * For another replica (the internal endpoint): the stored blob, else a
   * running fill's bytes from `start`, its last bytes held back until it is
   * verified. Undefined when neither is here; no upstream is asked.
   */
  async servePeer(digestInput: string, start: number): Promise<ServedBlob | undefined> {
    const digest = parseDigest(digestInput)
    return this.#inUseWhileOpen(digest, async () => {
      const stored = await this.#fromStore(digest, start > 0 ? { range: { start } } : {})
      if (stored) return stored
      const fill = [...this.#fills.values()].find((f) => f.digest === digest && !f.failure)
      await fill?.ready
      if (fill?.size === undefined || start >= fill.size) return undefined
      const body = fill.createReader(start)
      return { cache: 'miss' as const, size: fill.size, body, upstream: fill.upstream }
    })
  }

  /**
   * Where a client may GET a stored blob itself (storage.s3.redirect): a
   * presigned URL, its access recorded like a hit's; undefined when redirects
   * are off or the blob is not stored (it is then served or filled as usual).
   * The bytes no longer pass through here, so they are not verified on the way.
   */
  async redirectTo(digestInput: string): Promise<string | undefined> {
    const { presign } = this.deps
    if (presign === undefined) return undefined
    const digest = parseDigest(digestInput)
    if (!(await this.deps.blobs.has(digest))) return undefined
    this.deps.accesses.record(digest, this.deps.now())
    return presign(digest)
  }

  /** The stored blob's size; undefined when it is not stored (no upstream is asked). */
  async storedSize(digestInput: string): Promise<number | undefined> {
    return (await this.deps.blobs.stat(parseDigest(digestInput)))?.size
  }

  /** The blob from the store alone (no upstream is asked); undefined when it is not stored. */
  async serveStored(digestInput: string): Promise<ServedBlob | undefined> {
    const digest = parseDigest(digestInput)
    return this.#inUseWhileOpen(digest, () => this.#fromStore(digest, {}))
  }

  /** Opens with the digest in use (gc and eviction leave it alone) until the stream closes. */
  async #inUseWhileOpen<T extends ServedBlob | undefined>(
    digest: Digest,
    open: () => Promise<T>,
  ): Promise<T> {
    const release = this.inUse.acquire(digest)
    try {
      const served = await open()
      // A body read whole holds no file: gc and eviction may go on at once.
      if (served?.body instanceof Readable) served.body.once('close', release)
      else release()
      return served
    } catch (error) {
      release()
      throw error
    }
  }

  /**
   * Size of a blob without its bytes (HEAD): from the store when cached, else a
   * HEAD to the mirrors (no fill; a 404 on one mirror is asked of the next).
   */
  async stat(
    digestInput: string,
    source: FillSource,
  ): Promise<{ size: number | undefined; cache: 'hit' | 'miss'; upstream: string | undefined }> {
    const digest = parseDigest(digestInput)
    const stored = await this.deps.blobs.stat(digest)
    if (stored) return { size: stored.size, cache: 'hit', upstream: undefined }
    const res = await source.pool
      .request({
        path: source.path,
        method: 'HEAD',
        kind: 'document',
        expect: [200],
        tryNextOnNotFound: true,
        authScope: source.authScope,
        headers: source.headers,
      })
      .catch((error: unknown) => {
        throw error instanceof UpstreamNotFoundError ? new BlobUnknownUpstreamError(digest) : error
      })
    await res.body.dump()
    const length = res.headers['content-length']
    const size = typeof length === 'string' && /^\d+$/.test(length) ? Number(length) : undefined
    return { size, cache: 'miss', upstream: res.mirror.name }
  }

  /** Stops the transfers of fills in progress (shutdown). */
  abortFills(): void {
    for (const fill of this.#fills.values()) fill.abort()
  }

  /** Resolves once every fill started so far has finished (stored, passed through or failed). */
  async settled(): Promise<void> {
    await Promise.allSettled([...this.#fills.values()].map((fill) => fill.done))
  }

  async #fromStore(digest: Digest, options: ServeOptions): Promise<ServedBlob | undefined> {
    const { range } = options
    let opened
    try {
      opened = await this.deps.blobs.open(digest, {
        // The store verifies a read that covers the whole blob, and only such a read.
        verify: this.deps.verifyOnRead,
        ...(range
          ? { start: range.start, ...(range.end === undefined ? {} : { end: range.end }) }
          : {}),
      })
    } catch (error) {
      if (!(error instanceof DigestMismatchError)) throw error
      // Read whole and found rotten before a byte went out: removed, and (by `serve`) fetched again.
      await quarantine(this.deps, digest)
      return undefined
    }
    if (!opened) return undefined
    const { size, body } = opened
    if (body instanceof Readable)
      body.once('error', (error: Error) => {
        if (error instanceof DigestMismatchError) void quarantine(this.deps, digest)
      })
    this.deps.accesses.record(digest, this.deps.now())
    return { cache: 'hit', size, body, upstream: undefined }
  }

  async #fromFill(digest: Digest, source: FillSource, options: ServeOptions): Promise<ServedBlob> {
    const key = this.#key(digest, source)
    let running = this.#fills.get(key)
    if (running?.verified) {
      // All bytes are in and checked; only fsync and rename are left. Wait for them and read
      // the stored blob: it is a hit (nothing more comes from an upstream), and counted as one.
      await running.done.catch(() => undefined)
      const stored = await this.#fromStore(digest, options)
      if (stored) return stored
      running = this.#fills.get(key)
    }
    let fill = running?.joinable && !running.failure ? running : this.#start(key, digest, source)
    try {
      await fill.ready
    } catch (error) {
      if (fill !== running || !isRefusal(error) || sameSource(fill.source, source)) throw error
      // The joined fill asked for another repository of this registry, which may lack the blob
      // or keep it private: ask once more, with our own source.
      const again = this.#fills.get(key)
      const join =
        again !== undefined &&
        again !== running &&
        again.joinable &&
        !again.failure &&
        sameSource(again.source, source)
      fill = join ? again : this.#start(key, digest, source)
      await fill.ready
    }
    const { range } = options
    const end = range?.end !== undefined ? range.end + 1 : undefined
    const body = fill.createReader(range?.start ?? 0, end)
    return { cache: 'miss', size: fill.size, body, upstream: fill.upstream }
  }

  #key(digest: string, source: FillSource): string {
    let id = this.#poolIds.get(source.pool)
    if (id === undefined) {
      id = this.#nextPoolId++
      this.#poolIds.set(source.pool, id)
    }
    return `${id} ${digest}`
  }

  #start(key: string, digest: string, source: FillSource): Fill {
    const forget = () => {
      if (this.#fills.get(key) === fill) this.#fills.delete(key)
    }
    const fill: Fill = new Fill(digest, source, {
      passThrough: this.deps.now() - this.#storageFailedAt < STORAGE_RETRY_AFTER_MS,
      onStorageFailure: () => {
        this.#storageFailedAt = this.deps.now()
      },
      blobs: this.deps.blobs,
      metrics: this.deps.metrics,
      logger: this.deps.logger,
      maxBlobBytes: this.deps.maxBlobBytes ?? Number.POSITIVE_INFINITY,
      ...(this.deps.router ? { router: this.deps.router } : {}),
      onCommitted: async (committed, size) => {
        forget()
        this.deps.onStored?.(size)
        await this.deps.metadata
          .putBlob(committed, size, this.deps.now())
          .catch((error: unknown) => {
            this.deps.logger.warn({ err: error, digest: committed }, 'could not record stored blob')
          })
      },
    })
    this.#fills.set(key, fill)
    fill.done.then(forget, forget)
    return fill
  }
}

/** Same pool (the fill key says so), same repository and token scope. */
function sameSource(a: FillSource, b: FillSource): boolean {
  return a.path === b.path && a.authScope === b.authScope
}

/** A fill's answer that may hold for its own source only: not found, or access refused. */
function isRefusal(error: unknown): boolean {
  return error instanceof BlobUnknownUpstreamError || error instanceof UpstreamAuthError
}
