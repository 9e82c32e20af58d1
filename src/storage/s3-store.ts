/**
 * The blob store on S3 or an S3-compatible service (storage.s3):
 *
 *   <prefix>blobs/sha256/<first two hex>/<64 hex>   committed, verified content
 *
 * the same layout as on disk. Blobs in progress are written and hashed in the
 * local spool (tmp/ under storage.path), where fill readers follow them. When
 * the writer knows the digest (fills, puts, imports), each full part goes up
 * to a multipart upload at the final key while the blob is written, and the
 * upload is completed only once the content hashed to its digest (aborted
 * otherwise); else the commit uploads the verified file (one PutObject, or a
 * multipart upload). S3 shows a multipart object only once completed, so the
 * bucket never shows an unverified object, even after a crash. Reads are GetObject with Range, and a whole read is hashed on the
 * way out exactly as on disk.
 */
import * as nodeFs from 'node:fs/promises'
import { Readable, pipeline } from 'node:stream'
import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  type GetObjectCommandOutput,
  type S3Client,
} from '@aws-sdk/client-s3'
import { getSignedUrl } from '@aws-sdk/s3-request-presigner'
import {
  type BlobCheck,
  type BlobStat,
  type BlobStorage,
  type OpenedBlob,
  type ReadOptions,
} from './blob-storage.ts'
import {
  createSha256,
  digestHex,
  digestOf,
  hashToDigest,
  parseDigest,
  type Digest,
} from './digest.ts'
import {
  BlobNotFoundError,
  BlobTooLargeError,
  DigestMismatchError,
  InvalidRangeError,
  StorageReadError,
  StorageWriteError,
} from './errors.ts'
import { READ_HIGH_WATER_MARK, ReadBuffers } from './read-buffers.ts'
import { transferPacer } from './scavenge-pacer.ts'
import type { Publisher } from './blob-writer.ts'
import { Spool } from './spool.ts'
import { SpooledBlobStore } from './spooled-store.ts'
import { StreamedUpload, uploadFile, type UploadTarget } from './s3-upload.ts'
import { createVerifyStream } from './verify-stream.ts'

export interface S3StoreOptions {
  readonly client: S3Client
  readonly bucket: string
  /** Prepended to every key: '' or a path ending in '/'. */
  readonly prefix: string
  /** Size of each part of a multipart upload; files up to it go in one PutObject. */
  readonly partSizeBytes: number
  /** The local spool for blobs in progress (tmp/ under storage.path). */
  readonly spoolDir: string
  /** Replicas share the spool's volume: leave their temp files alone (see Spool.open). */
  readonly shared?: boolean
  readonly now?: () => number
}

const BLOBS = 'blobs/sha256/'

export class S3BlobStore extends SpooledBlobStore implements BlobStorage {
  /** Reads here come from sockets, never from these buffers: give() of them does nothing. */
  readonly readBuffers = new ReadBuffers(READ_HIGH_WATER_MARK)

  private constructor(
    private readonly options: S3StoreOptions,
    spool: Spool,
  ) {
    super(spool)
  }

  /** Opens the spool (removing leftovers) and checks that the bucket answers. */
  static async open(options: S3StoreOptions): Promise<S3BlobStore> {
    const spool = await Spool.open(options.spoolDir, {
      fs: nodeFs,
      pacer: transferPacer(),
      shared: options.shared === true,
      ...(options.now ? { now: options.now } : {}),
    })
    const store = new S3BlobStore(options, spool)
    await store.#headBucket()
    return store
  }

  get #client(): S3Client {
    return this.options.client
  }

  get #bucket(): string {
    return this.options.bucket
  }

  /** The object key of a blob. */
  keyOf(digest: Digest): string {
    const hex = digestHex(digest)
    return `${this.options.prefix}${BLOBS}${hex.slice(0, 2)}/${hex}`
  }

  async stat(digest: string): Promise<BlobStat | undefined> {
    const head = await this.#head(parseDigest(digest))
    return head && { size: head.size, mtimeMs: head.mtimeMs }
  }

  async has(digest: string): Promise<boolean> {
    return (await this.stat(digest)) !== undefined
  }

  async readSmall(digest: string, maxBytes: number): Promise<Buffer> {
    const valid = parseDigest(digest)
    const res = await this.#getWhole(valid)
    if (res === 'missing') throw new BlobNotFoundError(valid)
    const size = res.ContentLength ?? 0
    if (size > maxBytes) {
      bodyOf(res).destroy()
      throw new BlobTooLargeError(valid, size, maxBytes)
    }
    const data = await readUpTo(bodyOf(res), maxBytes + 1)
    if (data.length > maxBytes) throw new BlobTooLargeError(valid, data.length, maxBytes)
    const actual = digestOf(data)
    if (actual !== valid) throw new DigestMismatchError(valid, actual, data.length)
    return data
  }

  async readHead(digest: string, maxBytes: number): Promise<Buffer | undefined> {
    if (maxBytes <= 0) return (await this.has(digest)) ? Buffer.alloc(0) : undefined
    const res = await this.#get(parseDigest(digest), `bytes=0-${maxBytes - 1}`)
    if (res === 'missing') return undefined
    if (res === 'unsatisfiable') return Buffer.alloc(0)
    // Never more than the object holds, whatever a server sends for a range of an empty one.
    return readUpTo(bodyOf(res), Math.min(maxBytes, totalOf(res.ContentRange) ?? maxBytes))
  }

  async check(
    digest: string,
    pace: (bytes: number) => Promise<void>,
  ): Promise<{ readonly result: BlobCheck; readonly bytes: number }> {
    const valid = parseDigest(digest)
    const res = await this.#getWhole(valid)
    if (res === 'missing') return { result: 'missing', bytes: 0 }
    const hash = createSha256()
    let bytes = 0
    for await (const chunk of bodyOf(res) as AsyncIterable<Buffer>) {
      hash.update(chunk)
      bytes += chunk.length
      await pace(chunk.length)
    }
    if (hashToDigest(hash) === valid) return { result: 'ok', bytes }
    // Corrupt only if the object read is still the one under the key (a new upload replaced it: changed).
    const now = await this.#head(valid)
    return { result: now && now.etag === res.ETag ? 'corrupt' : 'changed', bytes }
  }

  /** A HEAD for the size, then the stream: S3 answers a small GET whole at once anyway. */
  async open(digest: string, options: ReadOptions = {}): Promise<OpenedBlob | undefined> {
    const stat = await this.stat(digest)
    if (!stat) return undefined
    try {
      return { size: stat.size, body: await this.createReadStream(digest, options) }
    } catch (error) {
      // Removed between the HEAD and the GET: absent, as a GET alone would have said.
      if (error instanceof BlobNotFoundError) return undefined
      throw error
    }
  }

  async createReadStream(digest: string, options: ReadOptions = {}): Promise<Readable> {
    const valid = parseDigest(digest)
    const { start = 0, end } = options
    if (!isValidRange(options.start, end)) throw new InvalidRangeError(options.start, end)
    if (end !== undefined && end < start) {
      // An empty range (say, `end: size - 1` of an empty blob): S3 would refuse it.
      if (!(await this.has(valid))) throw new BlobNotFoundError(valid)
      return Readable.from([], { objectMode: false })
    }
    const ranged = start > 0 || end !== undefined
    const res = await this.#get(valid, ranged ? `bytes=${start}-${end ?? ''}` : undefined)
    if (res === 'missing') throw new BlobNotFoundError(valid)
    // A start at or past the end reads nothing, as from a file.
    if (res === 'unsatisfiable') return Readable.from([], { objectMode: false })
    const body = bodyOf(res)
    // A range from 0 to the last byte or beyond is the whole blob and is verified like one.
    const total = ranged ? totalOf(res.ContentRange) : res.ContentLength
    const whole = start === 0 && (end === undefined || (total !== undefined && end >= total - 1))
    if (options.verify !== true || !whole) return body
    const verify = createVerifyStream(valid)
    // Errors reach the reader through `verify`; destroying `verify` ends the request.
    pipeline(body, verify, () => undefined)
    return verify
  }

  async delete(digest: string): Promise<boolean> {
    const valid = parseDigest(digest)
    // DeleteObject answers the same whether or not the key existed.
    if (!(await this.#head(valid))) return false
    await this.#send('DeleteObject', () =>
      this.#client.send(new DeleteObjectCommand({ Bucket: this.#bucket, Key: this.keyOf(valid) })),
    )
    return true
  }

  /** A URL that GETs the blob straight from the bucket for `expiresMs` (storage.s3.redirect). */
  async presignGet(digest: string, expiresMs: number): Promise<string> {
    const command = new GetObjectCommand({
      Bucket: this.#bucket,
      Key: this.keyOf(parseDigest(digest)),
    })
    return getSignedUrl(this.#client, command, { expiresIn: Math.ceil(expiresMs / 1000) })
  }

  async *list(): AsyncIterable<{ digest: Digest; size: number; mtimeMs: number }> {
    const prefix = `${this.options.prefix}${BLOBS}`
    let token: string | undefined
    do {
      const page = await this.#send('ListObjectsV2', () =>
        this.#client.send(
          new ListObjectsV2Command({
            Bucket: this.#bucket,
            Prefix: prefix,
            ...(token !== undefined ? { ContinuationToken: token } : {}),
          }),
        ),
      )
      // Keys come in UTF-8 binary order, which for these keys is digest order.
      for (const object of page.Contents ?? []) {
        const digest = digestOfKey(object.Key?.slice(prefix.length))
        if (digest === undefined) continue
        yield { digest, size: object.Size ?? 0, mtimeMs: object.LastModified?.getTime() ?? 0 }
      }
      token = page.IsTruncated === true ? page.NextContinuationToken : undefined
    } while (token !== undefined)
  }

  /** The spool takes writes and the bucket answers. */
  async checkWritable(): Promise<void> {
    await this.spool.checkWritable()
    await this.#headBucket()
  }

  /** With the digest known, parts go up while the blob is written (see StreamedUpload). */
  protected override publisherFor(tempPath: string, expected: Digest | undefined): Publisher {
    if (expected === undefined) return super.publisherFor(tempPath, expected)
    const upload = new StreamedUpload(this.#target(expected), tempPath)
    return {
      written: (bytes) => {
        upload.written(bytes)
      },
      publish: async (path, digest) => {
        // Committed under another digest than announced: that upload is not this blob's.
        if (digest !== expected) {
          await upload.discard()
          return this.publish(path, digest)
        }
        return this.#publishWith(path, () => upload.publish(path))
      },
      discard: () => upload.discard(),
    }
  }

  /** Uploads a verified temp file to the blob's key, then removes it. */
  protected async publish(tempPath: string, digest: Digest): Promise<void> {
    return this.#publishWith(tempPath, async () => {
      const { size } = await nodeFs.stat(tempPath)
      await uploadFile(this.#target(digest), tempPath, size)
    })
  }

  async #publishWith(tempPath: string, upload: () => Promise<void>): Promise<void> {
    try {
      await upload()
    } catch (error) {
      throw new StorageWriteError(`cannot upload a blob (${describe(error)})`, { cause: error })
    }
    await nodeFs.rm(tempPath, { force: true })
  }

  #target(digest: Digest): UploadTarget {
    return {
      client: this.#client,
      bucket: this.#bucket,
      key: this.keyOf(digest),
      partSizeBytes: this.options.partSizeBytes,
    }
  }

  async #headBucket(): Promise<void> {
    try {
      await this.#client.send(new HeadBucketCommand({ Bucket: this.#bucket }))
    } catch (error) {
      throw new StorageWriteError(`the bucket does not answer (${describe(error)})`, {
        cause: error,
      })
    }
  }

  async #head(
    digest: Digest,
  ): Promise<{ size: number; mtimeMs: number; etag: string | undefined } | undefined> {
    try {
      const head = await this.#client.send(
        new HeadObjectCommand({ Bucket: this.#bucket, Key: this.keyOf(digest) }),
      )
      return {
        size: head.ContentLength ?? 0,
        mtimeMs: head.LastModified?.getTime() ?? 0,
        etag: head.ETag,
      }
    } catch (error) {
      if (statusOf(error) === 404) return undefined
      throw new StorageReadError(`HeadObject failed (${describe(error)})`, { cause: error })
    }
  }

  /** GetObject of the whole blob, 'missing' for a 404. */
  async #getWhole(digest: Digest): Promise<GetObjectCommandOutput | 'missing'> {
    const res = await this.#get(digest)
    if (res === 'unsatisfiable')
      throw new StorageReadError('GetObject answered 416 without a range')
    return res
  }

  /** GetObject, with 'missing' for a 404 and 'unsatisfiable' for a 416 (a range past the end). */
  async #get(
    digest: Digest,
    range?: string,
  ): Promise<GetObjectCommandOutput | 'missing' | 'unsatisfiable'> {
    try {
      return await this.#client.send(
        new GetObjectCommand({
          Bucket: this.#bucket,
          Key: this.keyOf(digest),
          ...(range !== undefined ? { Range: range } : {}),
        }),
      )
    } catch (error) {
      const status = statusOf(error)
      if (status === 404) return 'missing'
      if (status === 416) return 'unsatisfiable'
      throw new StorageReadError(`GetObject failed (${describe(error)})`, { cause: error })
    }
  }

  async #send<T>(operation: string, request: () => Promise<T>): Promise<T> {
    try {
      return await request()
    } catch (error) {
      throw new StorageReadError(`${operation} failed (${describe(error)})`, { cause: error })
    }
  }
}

/** The digest a key names below blobs/sha256/ (`ab/ab12...`), or undefined for anything else. */
function digestOfKey(rest: string | undefined): Digest | undefined {
  const match = rest === undefined ? null : /^([a-f0-9]{2})\/([a-f0-9]{64})$/.exec(rest)
  if (!match?.[2]?.startsWith(match[1] ?? '-')) return undefined
  return `sha256:${match[2]}` as Digest
}

/** The body of a GetObject answer: in Node, the response stream. */
function bodyOf(res: GetObjectCommandOutput): Readable {
  const body = res.Body
  if (!(body instanceof Readable)) throw new StorageReadError('GetObject returned no stream')
  return body
}

/** The total size in a Content-Range (`bytes 0-9/100`), if it gives one. */
function totalOf(contentRange: string | undefined): number | undefined {
  const total = contentRange === undefined ? undefined : /\/(\d+)$/.exec(contentRange)?.[1]
  return total === undefined ? undefined : Number(total)
}

/** Reads at most `limit` bytes of `body`, then closes it. */
async function readUpTo(body: Readable, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = []
  let length = 0
  try {
    if (limit <= 0) return Buffer.alloc(0)
    for await (const chunk of body as AsyncIterable<Buffer>) {
      chunks.push(chunk)
      length += chunk.length
      if (length >= limit) break
    }
  } finally {
    body.destroy()
  }
  return Buffer.concat(chunks, length).subarray(0, limit)
}

/** Offsets a Range header can carry: a non-negative integer start; an integer end. */
function isValidRange(start: number | undefined, end: number | undefined): boolean {
  return (
    (start === undefined || (Number.isSafeInteger(start) && start >= 0)) &&
    (end === undefined || Number.isSafeInteger(end))
  )
}

function statusOf(error: unknown): number | undefined {
  return (error as { $metadata?: { httpStatusCode?: number } } | null)?.$metadata?.httpStatusCode
}

/** The error's name and HTTP status: never a key, a URL or a credential. */
function describe(error: unknown): string {
  const name = error instanceof Error ? error.name : 'error'
  const status = statusOf(error)
  return status === undefined ? name : `${name}, HTTP ${status}`
}
