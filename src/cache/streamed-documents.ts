/**
 * Upstream documents that are neither addressed by digest nor small enough to
 * hold in memory: a package index's project list (tens of MB), a file its
 * index gives no hash for, the legacy JSON API's documents. The
 * document streams to the first client while it is written to the blob store
 * (optionally transformed on the way: parsed and re-rendered, so upstream
 * markup never reaches a client or the disk); once complete it is committed
 * under its own sha256 and recorded in the metadata store. Within the TTL the
 * stored copy is served; after it the upstream is asked again, and when every
 * upstream fails the stored copy is served stale.
 *
 * One load per document at a time: requests arriving while it runs wait for
 * it and read the stored copy. Bodies are capped (`maxBytes`): a larger
 * declared Content-Length is refused before reading, and a body that grows past
 * the cap is cut: nothing is stored and the client's stream is destroyed, so it
 * never sees a complete-looking body. The upstream request is a `blob` one:
 * only the pool's body idle timeout bounds it, as the cap bounds its size.
 */
import type { IncomingHttpHeaders } from 'node:http'
import { PassThrough, Readable, Transform, Writable, pipeline } from 'node:stream'
import type { MetadataStore } from '../metadata/store.ts'
import type { Logger } from '../observability/logger.ts'
import type { CacheResult } from '../observability/pull-event.ts'
import type { BlobStorage } from '../storage/blob-storage.ts'
import type { BlobWriter } from '../storage/blob-writer.ts'
import { UpstreamNotFoundError, UpstreamStatusError } from '../upstream/errors.ts'
import type { UpstreamSource } from '../upstream/source.ts'
import { DocumentTooLargeError, isUpstreamFailure } from './errors.ts'
import { Freshness, type Kept, type Loaded } from './freshness.ts'

export interface StreamOptions {
  /** Bytes accepted from the upstream, at most the store's own cap (storage.maxBlobSize). */
  readonly maxBytes?: number
  /**
   * What the upstream body becomes before it is served and stored. Called with
   * the response headers; throwing refuses the answer before its body is read.
   */
  readonly transform?: (headers: IncomingHttpHeaders) => Transform
  /** The error for an upstream 404/410 (else it is a bad answer: 502, or stale). */
  readonly notFound?: () => Error
}

export interface StreamedDocument {
  readonly stream: Readable
  readonly cache: CacheResult
  readonly upstream: string | undefined
}

/** What the metadata store records for a streamed document. */
interface StoredDocument {
  readonly digest: string
}

export interface StreamedDocumentsDeps {
  readonly blobs: BlobStorage
  readonly metadata: MetadataStore
  readonly logger: Logger
  readonly now: () => number
  /** Default byte cap of a document (storage.maxBlobSize). */
  readonly maxBytes: number
}

export class StreamedDocuments {
  readonly #logger: Logger
  readonly #freshness: Freshness

  constructor(private readonly deps: StreamedDocumentsDeps) {
    this.#logger = deps.logger.child({ component: 'streamed-documents' })
    this.#freshness = new Freshness({ logger: this.#logger, now: deps.now })
  }

  /** The document `key` of namespace `ns`, streamed from `source` when not fresh in the store. */
  async get(
    ns: string,
    key: string,
    ttlMs: number,
    source: UpstreamSource,
    options: StreamOptions = {},
  ): Promise<StreamedDocument> {
    const { metadata } = this.deps
    const { served } = await this.#freshness.readThrough<StoredDocument, StreamedDocument>({
      key: `${ns} ${key}`,
      ttlMs,
      what: 'document',
      read: async () => {
        const record = await metadata.getDocument(ns, key)
        const stored = record?.page as StoredDocument | null | undefined
        return record && stored ? { fetchedAt: record.fetchedAt, value: stored } : undefined
      },
      write: async (kept) => {
        await metadata.putDocument(ns, key, { fetchedAt: kept.fetchedAt, page: kept.value })
      },
      serve: (kept, cache) => this.#open(kept.value, cache),
      load: () => this.#fetch(ns, key, source, options),
      staleOn: isStaleable,
    })
    return served
  }

  async #open(stored: StoredDocument, cache: CacheResult): Promise<StreamedDocument | undefined> {
    try {
      const stream = await this.deps.blobs.createReadStream(stored.digest, { verify: true })
      return { stream, cache, upstream: undefined }
    } catch {
      return undefined
    }
  }

  /**
   * Streams the upstream's answer to the caller while it is written to the
   * store; the kept record follows once it is committed (undefined when it
   * could not be: callers that waited then load themselves).
   */
  async #fetch(
    ns: string,
    key: string,
    source: UpstreamSource,
    options: StreamOptions,
  ): Promise<Loaded<StoredDocument, StreamedDocument>> {
    const maxBytes = Math.min(options.maxBytes ?? Infinity, this.deps.maxBytes)
    const res = await source.pool
      .request({ path: source.path, headers: source.headers, kind: 'blob', expect: [200] })
      .catch((error: unknown) => {
        if (!(error instanceof UpstreamNotFoundError)) throw error
        if (options.notFound) throw options.notFound()
        // A document that must exist (the project list): its absence is a bad answer.
        throw new UpstreamStatusError(error.pool, error.upstream, 404)
      })
    let transform: Transform | undefined
    try {
      const declared = Number(res.headers['content-length'])
      if (Number.isFinite(declared) && declared > maxBytes) {
        this.#logger.warn({ ns, key, declared, maxBytes }, 'upstream document over the size limit')
        throw new DocumentTooLargeError(source.pool.name, declared, maxBytes)
      }
      transform = options.transform?.(res.headers)
    } catch (error) {
      // dump() reads a little and closes the connection; it never reads a huge body.
      await res.body.dump().catch(() => undefined)
      throw error
    }
    const writer = await this.deps.blobs.createWriter().catch((error: unknown) => {
      this.#logger.warn({ err: error }, 'cannot write a temp file; streaming without caching')
      return undefined
    })
    const out = new PassThrough()
    const copy = new Copy(writer, out)
    const stages = [res.body, capped(maxBytes, source.pool.name), ...(transform ? [transform] : [])]
    const kept = new Promise<Kept<StoredDocument> | undefined>((settle) => {
      pipeline([...stages, copy], (error) => {
        if (error) {
          if (error instanceof DocumentTooLargeError)
            this.#logger.warn({ ns, key, maxBytes }, 'upstream document cut at the size limit')
          else
            this.#logger.warn({ ns, key, err: error }, 'streamed document failed; nothing stored')
          // The client must not mistake what it got for the whole document.
          out.destroy(error)
          void writer?.abort().catch(() => undefined)
          settle(undefined)
          return
        }
        if (!writer || !copy.stored) {
          void writer?.abort().catch(() => undefined)
          settle(undefined)
          return
        }
        this.#commit(writer).then(settle, (failure: unknown) => {
          this.#logger.warn({ err: failure }, 'could not store a streamed document')
          settle(undefined)
        })
      })
    })
    const upstream = res.mirror.name
    return { kept, cache: 'miss', served: { stream: out, cache: 'miss', upstream }, upstream }
  }

  /** Commits a finished writer under whatever its bytes hash to, and records the blob. */
  async #commit(writer: BlobWriter): Promise<Kept<StoredDocument>> {
    // Not addressed by digest: whatever the bytes hash to is the name they are kept under.
    const digest = writer.digestSoFar()
    const { size } = await writer.commit(digest)
    // Recorded like any blob, so eviction counts it and may remove it.
    await this.deps.metadata.putBlob(digest, size, this.deps.now())
    return { fetchedAt: this.deps.now(), value: { digest } }
  }
}

/** Errors after which a stored copy may be served instead. */
function isStaleable(error: unknown): boolean {
  return isUpstreamFailure(error) || error instanceof DocumentTooLargeError
}

/** Passes bytes on until more than `maxBytes` went through, then fails with DocumentTooLargeError. */
function capped(maxBytes: number, pool: string): Transform {
  let seen = 0
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      seen += chunk.length
      if (seen > maxBytes) callback(new DocumentTooLargeError(pool, seen, maxBytes))
      else callback(null, chunk)
    },
  })
}

/**
 * The end of the pipeline: every chunk goes to the blob writer (when there is
 * one) and to the client's stream, waiting for both to take it. A client that
 * leaves does not stop the copy to disk (the document is still worth keeping
 * for the requests waiting on it); a writer that fails (disk full) is dropped
 * and the client's stream goes on. With neither left the transfer stops.
 */
class Copy extends Writable {
  #writerFailed: boolean

  constructor(
    private readonly writer: BlobWriter | undefined,
    private readonly out: PassThrough,
  ) {
    super()
    this.#writerFailed = writer === undefined
    writer?.on('error', () => {
      this.#writerFailed = true
    })
  }

  /** True when every byte reached the writer. */
  get stored(): boolean {
    return !this.#writerFailed
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error) => void) {
    const waits: Promise<void>[] = []
    if (!this.#writerFailed && this.writer && !this.writer.write(chunk))
      waits.push(drained(this.writer))
    if (!this.out.destroyed && !this.out.write(chunk)) waits.push(drained(this.out))
    if (this.#writerFailed && this.out.destroyed) {
      callback(new Error('the client left and the document cannot be stored'))
      return
    }
    if (waits.length === 0) callback()
    else void Promise.all(waits).then(() => callback())
  }

  override _final(callback: (error?: Error) => void) {
    if (!this.out.destroyed) this.out.end()
    if (this.#writerFailed || !this.writer) {
      callback()
      return
    }
    this.writer.end(() => callback())
  }
}

/** Resolves when `stream` can take more, or can take nothing any more (closed or failed). */
async function drained(stream: Writable): Promise<void> {
  await new Promise<void>((resolve) => {
    const done = () => {
      stream.off('drain', done)
      stream.off('close', done)
      stream.off('error', done)
      resolve()
    }
    stream.on('drain', done)
    stream.on('close', done)
    stream.on('error', done)
  })
}
