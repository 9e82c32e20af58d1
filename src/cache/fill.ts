/**
 * A fill: one upstream transfer of one blob into the store, shared by every
 * client that asks for that digest from the same source meanwhile (single
 * flight).
 *
 * Bytes go upstream -> temp file (hashed as written) and clients read the temp
 * file as it grows, each at its own pace (TailReader). So a client that joins
 * late starts at byte 0, a slow client never slows the transfer or the other
 * clients, and memory stays bounded (each reader buffers at most one chunk).
 * The temp file is created only once an upstream answered with the content:
 * a 404, a refusal or an oversized blob never touches the disk.
 *
 * A transfer that breaks mid-way continues from the last byte written with
 * `Range: bytes=N-` on the next mirror that has the same bytes: the pool's
 * other mirrors, then the source's alternatives (the same Python file listed
 * by another upstream of the index); the mirror that broke goes to the back.
 * A mirror that ignores Range and answers 200 has the bytes we already hold
 * skipped. The fill gives up only when MAX_RESUMES_WITHOUT_PROGRESS
 * interruptions in a row brought no progress, or when no source can answer.
 *
 * At the end the hash decides: a match commits the blob; a mismatch discards
 * the temp file, counts the mismatch, cuts every reader that received bytes
 * of the bad transfer, and starts over from a mirror that did not contribute.
 * Readers never receive the final byte of a blob before it is verified, so no
 * client ever sees a complete body that does not hash to its digest.
 *
 * storage.maxBlobSize: an answer that declares more (Content-Length, or the
 * total of a Content-Range) is dropped unread and its mirror is not asked
 * again for this fill, since a lying mirror must not deny content another
 * mirror has; a body that grows past it (no declared size) is cut, its
 * attempt discarded, and its mirror excluded the same way. So each mirror
 * sends at most one oversized answer per fill, and when all did, the fill
 * fails with UpstreamBlobTooLargeError.
 *
 * When the disk cannot be written (full, read-only), the fill switches to a
 * pass-through attempt from byte 0 kept in a memory window of at most
 * PASSTHROUGH_WINDOW_BYTES ahead of the slowest reader: clients that had
 * received nothing yet get the whole blob, verified the same way, and nothing
 * is cached. Clients that already held bytes from the failed disk attempt are
 * cut (their prefix is unverified); registry and pip clients retry. When the
 * last reader of a pass-through attempt leaves, the transfer stops at once
 * and the upstream connection is closed: nothing would be cached, and nobody
 * else could join (a later client starts its own fill).
 */
import type { Logger } from '../observability/logger.ts'
import type { Metrics } from '../observability/metrics.ts'
import type { BlobStorage } from '../storage/blob-storage.ts'
import { DigestMismatchError, StorageWriteError } from '../storage/errors.ts'
import {
  UpstreamAuthError,
  UpstreamNotFoundError,
  UpstreamStatusError,
  UpstreamUnavailableError,
} from '../upstream/errors.ts'
import { classify, type Mirror } from '../upstream/mirror.ts'
import type { UpstreamRequest, UpstreamResponse } from '../upstream/pool.ts'
import {
  UpstreamBlobTooLargeError,
  BlobUnknownUpstreamError,
  FillFailedError,
  TransferDiscardedError,
} from './errors.ts'
import { FillSources, type FillSource } from './fill-sources.ts'
import { DiskAttempt, MemoryAttempt, PASSTHROUGH_WINDOW_BYTES, type Attempt } from './attempt.ts'
import { TailReader, type FillView } from './tail-reader.ts'

export type { FillSource }

/** Interruptions in a row that brought no progress, after which the fill gives up. */
export const MAX_RESUMES_WITHOUT_PROGRESS = 5

/**
 * New bytes an interrupted response must bring to count as progress, so a
 * mirror that sends a few bytes per connection cannot keep a fill going for
 * ever: the resumes of a fill stay below size / MIN_PROGRESS_BYTES plus the
 * stalls allowed in a row.
 */
export const MIN_PROGRESS_BYTES = 64 * 1024

const CONTENT_RANGE_RE = /^bytes (\d+)-(\d+)\/(\d+|\*)$/

/** Where a fill's bytes come from when replicas share fills (cluster/fill-router.ts). */
export interface FillRouter {
  /**
   * Decides before the first request: `source` replaces the client's (another
   * replica fetching the same blob); `release` runs when the fill ends.
   */
  route(
    digest: string,
    source: FillSource,
    signal: AbortSignal,
  ): Promise<{ readonly source?: FillSource; readonly release: () => void }>
}

export interface FillDeps {
  readonly blobs: BlobStorage
  /** Replicas sharing fills: ask the router where to fetch from. */
  readonly router?: FillRouter
  readonly metrics: Metrics
  readonly logger: Logger
  /** storage.maxBlobSize: blobs declared or sent larger than this are refused. */
  readonly maxBlobBytes: number
  /** Called once the blob is committed (records it for eviction and stats). */
  readonly onCommitted?: (digest: string, size: number) => Promise<void>
  /** Start as pass-through: the disk failed recently, so do not begin a write that will fail mid-way. */
  readonly passThrough?: boolean
  /** Called when a write to storage fails (the cache then starts fills as pass-through for a while). */
  readonly onStorageFailure?: () => void
}

/** One round at the whole blob; its attempt exists from the first usable answer on. */
interface Round {
  attempt: Attempt | undefined
  passThrough: boolean
}

/** An upstream answer that can feed the attempt, and how many leading body bytes to skip. */
interface Opened {
  readonly res: UpstreamResponse
  readonly source: FillSource
  readonly skip: number
}

/** A body grew past storage.maxBlobSize: the attempt is discarded and its mirror excluded. */
class OversizeBody extends Error {
  constructor(
    readonly mirror: Mirror,
    readonly bytes: number,
  ) {
    super('upstream body grew past storage.maxBlobSize')
  }
}

export class Fill implements FillView {
  readonly digest: string
  /** Resolves once an upstream answered with the blob (size known), rejects if none can. */
  readonly ready: Promise<void>
  /** Resolves when the blob is committed (or passed through), rejects when the fill fails. */
  readonly done: Promise<void>

  #size: number | undefined
  #upstream: string | undefined
  #verified = false
  #failure: Error | undefined
  #joinable = true
  #attempt: Attempt | undefined
  readonly #readers = new Set<TailReader>()
  /** A reader was created: from then on, a pass-through attempt without readers is pointless. */
  #hadReader = false
  readonly #abort = new AbortController()
  #sources: FillSources
  /** Why the last mirror that was asked could not be used because of storage.maxBlobSize. */
  #tooLarge: UpstreamBlobTooLargeError | undefined
  #markReady: () => void = () => undefined
  #failReady: (error: Error) => void = () => undefined
  #wake: () => void = () => undefined
  /** Wakes a pass-through transfer that waits for room in its window. */
  #wakePacer: (() => void) | undefined
  #progress: Promise<void>
  readonly #logger: Logger

  constructor(
    digest: string,
    /** Where the client that started the fill asked for the blob. */
    readonly source: FillSource,
    private readonly deps: FillDeps,
  ) {
    this.digest = digest
    this.#logger = deps.logger.child({ component: 'fill', digest })
    this.#sources = new FillSources(source, this.#logger)
    this.#abort.signal.addEventListener('abort', () => this.#pacerMayGo(), { once: true })
    this.#progress = this.#nextProgress()
    this.ready = new Promise<void>((resolve, reject) => {
      this.#markReady = resolve
      this.#failReady = reject
    })
    // Callers that only await `done` must not see an unhandled `ready` rejection.
    this.ready.catch(() => undefined)
    this.done = this.#run()
    this.done.catch(() => undefined)
  }

  /** Total size once an upstream said it (Content-Length or Content-Range). */
  get size(): number | undefined {
    return this.#size
  }

  /** Name of the mirror that sent the latest bytes. */
  get upstream(): string | undefined {
    return this.#upstream
  }

  /** The whole blob hashed to its digest: readers may have its last byte. */
  get verified(): boolean {
    return this.#verified
  }

  /** Why the fill failed; readers are cut with it. */
  get failure(): Error | undefined {
    return this.#failure
  }

  /** False once the fill streams through memory: late joiners could not start at byte 0. */
  get joinable(): boolean {
    return this.#joinable
  }

  /** The current attempt; readers bind to it and follow a new one only if they sent nothing. */
  get attempt(): Attempt | undefined {
    return this.#attempt
  }

  /** A reader of bytes [start, end) of the blob; end defaults to the whole blob. */
  createReader(start = 0, end?: number): TailReader {
    const reader = new TailReader(this, start, end)
    this.#readers.add(reader)
    this.#hadReader = true
    reader.once('close', () => {
      this.#readers.delete(reader)
      this.consumed()
      if (this.#readers.size === 0 && this.#attempt?.kind === 'memory' && !this.verified)
        this.#abandon()
    })
    return reader
  }

  /** How far a reader that wants bytes up to `end` (exclusive) may read now. */
  readableLimit(end: number | undefined): number {
    const available = this.#attempt?.available ?? 0
    const target = end ?? this.size
    if (this.verified) return Math.min(available, target ?? available)
    // Hold back the blob's last byte until the hash is confirmed.
    const lastByte = this.size !== undefined ? this.size - 1 : available - 1
    return Math.max(0, Math.min(available, lastByte, target ?? Number.POSITIVE_INFINITY))
  }

  /** Readers report progress so the attempt's memory can free what all of them passed. */
  consumed(): void {
    const attempt = this.#attempt
    if (attempt) {
      // In pass-through, a reader that has sent nothing yet will read this attempt too (it may
      // wait for a range further on): its position counts before it is bound.
      const pending = attempt.kind === 'memory'
      const positions: number[] = []
      for (const reader of this.#readers) {
        if (reader.attempt === attempt || (pending && reader.bytesSent === 0))
          positions.push(reader.position)
      }
      attempt.consumed(positions)
    }
    this.#pacerMayGo()
  }

  /** Resolves at the next change a reader may care about (bytes, verification, failure). */
  async progress(): Promise<void> {
    return this.#progress
  }

  /** Stops the transfer (server shutdown); readers are cut. */
  abort(): void {
    this.#abort.abort()
  }

  #nextProgress(): Promise<void> {
    return new Promise<void>((resolve) => {
      this.#wake = resolve
    })
  }

  #tick = (): void => {
    const wake = this.#wake
    this.#progress = this.#nextProgress()
    wake()
  }

  async #run(): Promise<void> {
    const route = await this.deps.router
      ?.route(this.digest, this.source, this.#abort.signal)
      .catch((error: unknown) => {
        this.#logger.warn({ err: error }, 'cannot ask the other replicas; fetching alone')
        return undefined
      })
    try {
      if (route?.source) this.#sources = new FillSources(route.source, this.#logger)
      await this.#fetch()
    } finally {
      route?.release()
    }
  }

  async #fetch(): Promise<void> {
    const { metrics } = this.deps
    const excluded = new Set<Mirror>()
    let passThrough = this.deps.passThrough ?? false
    if (passThrough) this.#joinable = false
    metrics.fillsInFlight.inc()
    try {
      // Each round after corrupt or oversized content uses other mirrors: at most one round per
      // mirror, plus one for switching to pass-through when the disk fails.
      for (let n = 0; n <= this.#sources.mirrorCount + 1; n++) {
        const round: Round = { attempt: undefined, passThrough }
        try {
          const attempt = await this.#transfer(round, excluded)
          // Verified content may go out before it is durable: fsync and rename come after.
          await attempt.verify(this.digest)
          this.#size = attempt.available
          this.#verified = true
          this.#tick()
          await this.#commit(attempt)
          // From here on, new clients read the stored blob (or start a new fill if storing failed).
          this.#joinable = false
          return
        } catch (error) {
          // Readers must not find the failed attempt while the next one is being set up.
          this.#attempt = undefined
          const attempt = round.attempt
          passThrough = round.passThrough
          if (this.#abort.signal.aborted) {
            await attempt?.discard()
            throw abortReason(this.#abort.signal, error)
          }
          if (error instanceof DigestMismatchError && attempt) {
            this.#onMismatch(attempt, error, excluded)
          } else if (error instanceof OversizeBody) {
            this.#onOversize(error, excluded)
          } else if (isStorageError(error) && attempt?.kind === 'disk') {
            this.#degrade(error)
            passThrough = true
          } else {
            await attempt?.discard()
            throw error
          }
          await attempt?.discard()
        } finally {
          round.attempt?.release()
        }
      }
      throw new FillFailedError(this.digest, 'no mirror sent content matching the digest')
    } catch (error) {
      this.#fail(error instanceof Error ? error : new Error(String(error)))
      throw error
    } finally {
      metrics.fillsInFlight.dec()
    }
  }

  /** Makes a verified disk attempt durable; a failure here only costs the caching. */
  async #commit(attempt: Attempt): Promise<void> {
    if (attempt.kind !== 'disk') return
    try {
      const size = await attempt.finish(this.digest)
      await this.deps.onCommitted?.(this.digest, size)
    } catch (error) {
      if (!isStorageError(error)) throw error
      this.deps.onStorageFailure?.()
      this.deps.metrics.storageWriteErrors.inc()
      this.#logger.warn({ err: error }, 'verified blob served but could not be stored')
    }
  }

  /** The round's attempt, created on its first usable answer. */
  async #attemptFor(round: Round, res: UpstreamResponse): Promise<Attempt> {
    if (round.attempt) return round.attempt
    try {
      round.attempt = round.passThrough ? new MemoryAttempt(this.#tick) : await this.#diskOrMemory()
    } catch (error) {
      dropUnread(res)
      throw error
    }
    round.passThrough = round.attempt.kind === 'memory'
    this.#attempt = round.attempt
    return round.attempt
  }

  async #diskOrMemory(): Promise<Attempt> {
    try {
      return await DiskAttempt.create(this.deps.blobs, this.#tick, this.digest)
    } catch (error) {
      if (!isStorageError(error)) throw error
      this.#degrade(error)
      return new MemoryAttempt(this.#tick)
    }
  }

  /** Switches to pass-through after a storage failure: counted, logged, late joiners start their own fill. */
  #degrade(error: unknown): void {
    this.#joinable = false
    this.deps.onStorageFailure?.()
    this.deps.metrics.storageWriteErrors.inc()
    this.#logger.warn({ err: error }, 'cannot write to storage; streaming through without caching')
    this.#cutReaders('storage_failure')
  }

  /**
   * Pass-through pacing: the attempt holds at most PASSTHROUGH_WINDOW_BYTES
   * ahead of its slowest reader, and stops once no reader is left.
   */
  async #pace(attempt: MemoryAttempt): Promise<void> {
    // Bounded: each pass waits for a reader to move on or leave, or for the abort.
    for (;;) {
      if (this.#abort.signal.aborted) throw abortReason(this.#abort.signal, undefined)
      // The client that started the fill attaches once `ready` resolved; only then can all leave.
      if (this.#hadReader && this.#readers.size === 0) {
        this.#abandon()
        throw new TransferDiscardedError(this.digest, 'no_readers')
      }
      this.consumed()
      if (attempt.held <= PASSTHROUGH_WINDOW_BYTES) return
      await new Promise<void>((resolve) => (this.#wakePacer = resolve))
    }
  }

  #pacerMayGo(): void {
    const wake = this.#wakePacer
    this.#wakePacer = undefined
    wake?.()
  }

  /** A pass-through attempt nobody reads is stopped: nothing would be cached, and it would fill memory. */
  #abandon(): void {
    if (this.#abort.signal.aborted) return
    this.#logger.info('no client reads the pass-through transfer any more; stopping it')
    this.#abort.abort(new TransferDiscardedError(this.digest, 'no_readers'))
  }

  /**
   * Moves bytes until the attempt holds the whole blob. After a cut the next
   * request goes to the next source or mirror, from the byte reached.
   */
  async #transfer(round: Round, excluded: Set<Mirror>): Promise<Attempt> {
    // Mirrors whose transfer broke lately: asked only after the others.
    const avoid = new Set<Mirror>()
    let stalls = 0
    for (;;) {
      const offset = round.attempt?.available ?? 0
      const opened = await this.#open(offset, excluded, avoid)
      if (opened) {
        const { res, source, skip } = opened
        const attempt = await this.#attemptFor(round, res)
        attempt.contributors.add(res.mirror)
        this.#upstream = res.mirror.name
        this.#markReady()
        try {
          await this.#copyBody(attempt, res, skip)
          return attempt
        } catch (error) {
          if (this.#abort.signal.aborted || isStorageError(error) || error instanceof OversizeBody)
            throw error
          source.pool.recordBodyFailure(res.mirror, classify(error))
          this.deps.metrics.upstreamResumes.inc({
            pool: source.pool.name,
            upstream: res.mirror.name,
          })
          this.#logger.warn(
            { upstream: res.mirror.name, at: attempt.available, err: error },
            'transfer interrupted; continuing from the next mirror',
          )
          await this.#setBack(res.mirror, source, avoid)
        }
      }
      const progress = (round.attempt?.available ?? 0) - offset
      stalls = progress >= MIN_PROGRESS_BYTES ? 0 : stalls + 1
      if (stalls >= MAX_RESUMES_WITHOUT_PROGRESS) {
        throw new FillFailedError(
          this.digest,
          `${stalls} interrupted transfers in a row without progress`,
        )
      }
    }
  }

  /**
   * The mirror goes to the back of its pool's line and its source to the back
   * of the sources (loading the alternatives first, so they come before it).
   * Once every mirror of a pool broke, the oldest break is forgiven first.
   */
  async #setBack(mirror: Mirror, source: FillSource, avoid: Set<Mirror>): Promise<void> {
    const { mirrors } = source.pool
    if (mirrors.every((m) => m === mirror || avoid.has(m))) for (const m of mirrors) avoid.delete(m)
    avoid.add(mirror)
    await this.#sources.expand()
    this.#sources.demote(source)
  }

  /**
   * The first usable answer for the bytes from `offset`: each source in turn
   * (its pool tries its own mirrors), the alternatives once the known sources
   * are used up. Undefined when a mirror answered with something unusable (it
   * is set back; the caller counts that as no progress). Throws when no source
   * can give the bytes.
   */
  async #open(
    offset: number,
    excluded: Set<Mirror>,
    avoid: Set<Mirror>,
  ): Promise<Opened | undefined> {
    let refused: Error | undefined
    // Bounded: each source is visited once, and the alternatives are added once.
    for (let i = 0; ;) {
      const source = this.#sources.list[i]
      if (!source) {
        if (await this.#sources.expand()) continue
        throw (
          this.#tooLarge ??
          refused ??
          new FillFailedError(this.digest, 'no mirror sent content matching the digest')
        )
      }
      i++
      try {
        const opened = await this.#openOn(source, offset, excluded, avoid)
        if (opened === 'unusable') return undefined
        if (opened) return opened
      } catch (error) {
        if (this.#abort.signal.aborted || !isRefusal(error)) throw error
        refused ??= error
        if (i < this.#sources.list.length || this.#sources.canExpand) {
          this.#logger.info(
            { pool: source.pool.name, err: error },
            'this source cannot give the content; trying the next one',
          )
        }
      }
    }
  }

  /** One source's answer; undefined when every mirror of it was excluded (too large, corrupt). */
  async #openOn(
    source: FillSource,
    offset: number,
    excluded: Set<Mirror>,
    avoid: Set<Mirror>,
  ): Promise<Opened | 'unusable' | undefined> {
    // Bounded: each pass excludes one mirror of this pool.
    while (!FillSources.exhausted(source, excluded)) {
      const res = await this.#request(source, {
        path: source.path,
        kind: 'blob',
        // A 206 is usable only when resuming (checked in #accept).
        expect: [200, 206],
        rangeStart: offset,
        tryNextOnNotFound: true,
        exclude: excluded,
        avoid,
        authScope: source.authScope,
        headers: source.headers,
        signal: this.#abort.signal,
      })
      const skip = await this.#accept(res, offset, source)
      if (skip === 'too_large') {
        excluded.add(res.mirror)
        continue
      }
      if (skip === 'unusable') {
        source.pool.recordBodyFailure(res.mirror, 'bad_response')
        this.#logger.warn(
          { upstream: res.mirror.name, status: res.status },
          'unusable answer to a resume request',
        )
        await this.#setBack(res.mirror, source, avoid)
        return 'unusable'
      }
      return { res, source, skip }
    }
    return undefined
  }

  /** The pool's answer; not found on every mirror of the source is BlobUnknownUpstreamError. */
  async #request(source: FillSource, req: UpstreamRequest): Promise<UpstreamResponse> {
    try {
      return await source.pool.request(req)
    } catch (error) {
      if (error instanceof UpstreamNotFoundError) throw new BlobUnknownUpstreamError(this.digest)
      throw error
    }
  }

  /**
   * Checks an upstream answer (200 or 206) against the byte we need next and
   * the size limit. Returns how many leading body bytes to skip, `unusable`
   * (another request is made) or `too_large` (the mirror is not asked again).
   */
  async #accept(
    res: UpstreamResponse,
    offset: number,
    source: FillSource,
  ): Promise<number | 'unusable' | 'too_large'> {
    let skip: number | undefined
    let total: number | undefined
    if (res.status === 200) {
      // A 200 to a Range request is the whole body: skip what we already hold.
      skip = offset
      total = contentLength(res)
    } else if (res.status === 206 && offset > 0) {
      const range = CONTENT_RANGE_RE.exec(res.headers['content-range'] ?? '')
      if (range && Number(range[1]) === offset) {
        skip = 0
        total = range[3] === '*' ? undefined : Number(range[3])
      }
    }
    if (skip === undefined) {
      // A 206 to a request from byte 0, or from another byte than asked.
      await res.body.dump()
      return 'unusable'
    }
    if (total !== undefined && total > this.deps.maxBlobBytes) {
      dropUnread(res)
      this.#refuseTooLarge(source, res.mirror, total, 'declares')
      return 'too_large'
    }
    if (total !== undefined && this.size !== undefined && total !== this.size) {
      // Content-addressed bytes have one size: a mirror that says otherwise has other content.
      dropUnread(res)
      return 'unusable'
    }
    this.#size ??= total
    return skip
  }

  async #copyBody(attempt: Attempt, res: UpstreamResponse, skip: number): Promise<void> {
    let toSkip = skip
    let received = 0
    let end = attempt.available
    const started = performance.now()
    try {
      for await (const chunk of res.body as AsyncIterable<Buffer>) {
        received += chunk.length
        let data = chunk
        if (toSkip > 0) {
          if (data.length <= toSkip) {
            toSkip -= data.length
            continue
          }
          data = data.subarray(toSkip)
          toSkip = 0
        }
        end += data.length
        if (end > this.deps.maxBlobBytes) throw new OversizeBody(res.mirror, end)
        if (this.size !== undefined && end > this.size)
          throw new Error('upstream body is longer than the size it declared')
        await attempt.append(data)
        if (attempt instanceof MemoryAttempt) await this.#pace(attempt)
      }
    } finally {
      // Feeds the `fastest` selection policy (small bodies are ignored there).
      res.mirror.stats.recordTransfer(received, performance.now() - started)
      // The resume offset must be the bytes really held, so wait for every write.
      await attempt.settle()
    }
    if (toSkip > 0 || (this.size !== undefined && attempt.available < this.size)) {
      throw new Error('upstream body ended early')
    }
  }

  #refuseTooLarge(source: FillSource, mirror: Mirror, size: number, how: 'declares' | 'sent') {
    const { maxBlobBytes } = this.deps
    this.#tooLarge = new UpstreamBlobTooLargeError(this.digest, size, maxBlobBytes)
    this.deps.metrics.upstreamErrors.inc({
      pool: source.pool.name,
      upstream: mirror.name,
      reason: 'too_large',
    })
    this.#logger.warn(
      { upstream: mirror.name, size, maxBlobBytes, how },
      'upstream blob is larger than storage.maxBlobSize; refused',
    )
  }

  #onOversize(error: OversizeBody, excluded: Set<Mirror>): void {
    excluded.add(error.mirror)
    const source = this.#sources.list.find((s) => s.pool.mirrors.includes(error.mirror))
    this.#refuseTooLarge(source ?? this.source, error.mirror, error.bytes, 'sent')
    this.#cutReaders('too_large')
    this.#size = undefined
  }

  #onMismatch(attempt: Attempt, error: DigestMismatchError, excluded: Set<Mirror>): void {
    for (const mirror of attempt.contributors) {
      excluded.add(mirror)
      const pool =
        this.#sources.list.find((s) => s.pool.mirrors.includes(mirror))?.pool ?? this.source.pool
      pool.recordBodyFailure(mirror, 'digest_mismatch')
      this.deps.metrics.digestMismatches.inc({ pool: pool.name, upstream: mirror.name })
    }
    this.#logger.error(
      {
        upstreams: [...attempt.contributors].map((m) => m.name),
        actual: error.actual,
        size: error.size,
      },
      'upstream content does not match its digest; discarded',
    )
    this.#cutReaders('digest_mismatch')
    this.#size = undefined
  }

  /** Readers that received bytes of a discarded attempt are cut; the others wait for the next one. */
  #cutReaders(reason: TransferDiscardedError['reason']): void {
    for (const reader of this.#readers) {
      if (reader.bytesSent > 0) reader.destroy(new TransferDiscardedError(this.digest, reason))
    }
  }

  #fail(error: Error): void {
    this.#failure = error
    this.#failReady(error)
    this.#tick()
    if (error instanceof TransferDiscardedError && error.reason === 'no_readers')
      this.#logger.info('pass-through fill stopped')
    // Any client can ask for a digest no upstream has: that is an answer, not a
    // fault, and must not fill the warn log with stacks.
    else if (error instanceof BlobUnknownUpstreamError)
      this.#logger.info({ code: error.code }, 'no upstream has the blob')
    else this.#logger.warn({ err: error }, 'fill failed')
  }
}

function contentLength(res: UpstreamResponse): number | undefined {
  const value = res.headers['content-length']
  return typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : undefined
}

/** Closes the connection without reading the body (its abort error has no reader to reach). */
function dropUnread(res: UpstreamResponse): void {
  res.body.on('error', () => undefined)
  res.body.destroy()
}

function isStorageError(error: unknown): boolean {
  return error instanceof StorageWriteError
}

/** Answers after which another source of the same bytes is worth asking. */
const REFUSALS = [
  BlobUnknownUpstreamError,
  UpstreamUnavailableError,
  UpstreamAuthError,
  UpstreamStatusError,
  FillFailedError,
  UpstreamBlobTooLargeError,
]

function isRefusal(error: unknown): error is Error {
  return REFUSALS.some((refusal) => error instanceof refusal)
}

/** Why the fill was aborted: the reason given (no readers), else what the abort caused. */
function abortReason(signal: AbortSignal, error: unknown): Error {
  const reason: unknown = signal.reason
  if (reason instanceof TransferDiscardedError) return reason
  return error instanceof Error ? error : new Error('fill aborted', { cause: reason })
}
