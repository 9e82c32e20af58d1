/**
 * Large upstream documents that are neither addressed by digest nor small
 * enough to hold in memory (a package index's project list: tens of MB). The
 * upstream body streams to the client while it is written to the blob store;
 * once complete it is committed under its own sha256 and recorded in the
 * metadata store. Within the TTL the stored copy is served; after it the
 * upstream is asked again, and when every upstream fails the stored copy is
 * served stale. When the disk cannot be written the body still streams.
 */
import { PassThrough, Transform, pipeline, type Readable } from 'node:stream'
import type { MetadataStore } from '../metadata/store.ts'
import type { Logger } from '../observability/logger.ts'
import type { CacheResult } from '../observability/pull-event.ts'
import type { BlobStore, BlobWriter } from '../storage/blob-store.ts'
import type { UpstreamPool } from '../upstream/pool.ts'
import { headerValue } from './documents.ts'
import { FillFailedError, isUpstreamFailure } from './errors.ts'

export interface StreamedSource {
  readonly pool: UpstreamPool
  readonly path: string
  readonly headers?: Readonly<Record<string, string>>
}

export interface StreamedDocument {
  readonly stream: Readable
  readonly contentType: string | undefined
  readonly cache: CacheResult
  readonly upstream: string | undefined
}

/** What the metadata store records for a streamed document. */
interface StoredDocument {
  readonly digest: string
  readonly contentType: string | undefined
}

export interface StreamedDocumentsDeps {
  readonly blobs: BlobStore
  readonly metadata: MetadataStore
  readonly logger: Logger
  readonly now: () => number
}

export class StreamedDocuments {
  readonly #logger: Logger

  constructor(private readonly deps: StreamedDocumentsDeps) {
    this.#logger = deps.logger.child({ component: 'streamed-documents' })
  }

  async get(
    ns: string,
    key: string,
    ttlMs: number,
    source: StreamedSource,
  ): Promise<StreamedDocument> {
    const record = await this.deps.metadata.getIndexPage(ns, key).catch(() => undefined)
    const stored = record?.page as StoredDocument | undefined
    if (record && stored && this.deps.now() - record.fetchedAt < ttlMs) {
      const hit = await this.#open(stored, 'hit')
      if (hit) return hit
    }
    try {
      return await this.#fetch(ns, key, source)
    } catch (error) {
      const stale =
        stored && isUpstreamFailure(error) ? await this.#open(stored, 'stale') : undefined
      if (!stale) throw error
      this.#logger.warn({ ns, key, err: error }, 'every upstream failed; serving a stale copy')
      return stale
    }
  }

  async #open(stored: StoredDocument, cache: CacheResult): Promise<StreamedDocument | undefined> {
    try {
      const stream = await this.deps.blobs.createReadStream(stored.digest, { verify: true })
      return { stream, contentType: stored.contentType, cache, upstream: undefined }
    } catch {
      return undefined
    }
  }

  async #fetch(ns: string, key: string, source: StreamedSource): Promise<StreamedDocument> {
    const res = await source.pool.request({
      path: source.path,
      headers: source.headers,
      kind: 'blob',
    })
    if (res.status !== 200) {
      await res.body.dump()
      throw new FillFailedError(key, `upstream answered ${res.status}`)
    }
    const contentType = headerValue(res.headers, 'content-type')
    const writer = await this.deps.blobs.createWriter().catch((error: unknown) => {
      this.#logger.warn({ err: error }, 'cannot write a temp file; streaming without caching')
      return undefined
    })
    const out = new PassThrough()
    const copy = tee(writer)
    pipeline(res.body, copy.transform, out, (error) => {
      if (!writer) return
      if (error || !copy.stored()) {
        writer.abort().catch(() => undefined)
        return
      }
      this.#commit(ns, key, writer, contentType).catch((failure: unknown) => {
        this.#logger.warn({ err: failure }, 'could not store a streamed document')
      })
    })
    return { stream: out, contentType, cache: 'miss', upstream: res.mirror.name }
  }

  async #commit(
    ns: string,
    key: string,
    writer: BlobWriter,
    contentType: string | undefined,
  ): Promise<void> {
    // Not addressed by digest: whatever the bytes hash to is the name they are kept under.
    const digest = writer.digestSoFar()
    const { size } = await writer.commit(digest)
    // Recorded like any blob, so eviction counts it and may remove it.
    await this.deps.metadata.putBlob(digest, size, this.deps.now())
    const page: StoredDocument = { digest, contentType }
    await this.deps.metadata.putIndexPage(ns, key, { fetchedAt: this.deps.now(), page })
  }
}

/**
 * Passes chunks on while writing them to `writer` (when there is one), waiting
 * for it to drain. A writer that fails (disk full) is dropped and the stream
 * goes on; `stored()` then says false.
 */
function tee(writer: BlobWriter | undefined): { transform: Transform; stored: () => boolean } {
  let failed = writer === undefined
  let resume: (() => void) | undefined
  writer?.on('error', () => {
    failed = true
    resume?.()
  })
  const transform = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      if (failed || !writer || writer.write(chunk)) {
        callback(null, chunk)
        return
      }
      resume = () => {
        resume = undefined
        callback(null, chunk)
      }
      writer.once('drain', () => resume?.())
    },
    flush(callback) {
      if (failed || !writer) {
        callback()
        return
      }
      writer.end(() => callback())
    },
  })
  return { transform, stored: () => !failed }
}
