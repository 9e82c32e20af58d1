/**
 * Uploads of verified local files to their final keys. A file up to one part goes
 * in one PutObject; a larger one in a multipart upload, which S3 makes visible
 * only at CompleteMultipartUpload: a crash or failure part-way leaves no object
 * (only parts, removed by AbortMultipartUpload or the bucket's lifecycle rule
 * for incomplete uploads).
 */
import { createReadStream } from 'node:fs'
import { stat } from 'node:fs/promises'
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  PutObjectCommand,
  UploadPartCommand,
  type CompletedPart,
  type S3Client,
} from '@aws-sdk/client-s3'
import type { Publisher } from './blob-writer.ts'

/** S3 takes at most this many parts per upload. */
export const MAX_PARTS = 10_000

export interface UploadTarget {
  readonly client: S3Client
  readonly bucket: string
  readonly key: string
  /** Size of each part but the last (at least 5 MiB, S3's minimum). */
  readonly partSizeBytes: number
}

/** Uploads `size` bytes of the file at `path` to the target key. */
export async function uploadFile(target: UploadTarget, path: string, size: number): Promise<void> {
  const { client, bucket, key } = target
  if (size <= target.partSizeBytes) {
    await client.send(
      new PutObjectCommand({
        Bucket: bucket,
        Key: key,
        Body: createReadStream(path),
        ContentLength: size,
        ContentType: 'application/octet-stream',
      }),
    )
    return
  }
  // Parts grow for very large files so that they fit in MAX_PARTS.
  const partSize = Math.max(target.partSizeBytes, Math.ceil(size / MAX_PARTS))
  const { UploadId } = await client.send(
    new CreateMultipartUploadCommand({
      Bucket: bucket,
      Key: key,
      ContentType: 'application/octet-stream',
    }),
  )
  if (UploadId === undefined) throw new Error('the object store gave no upload id')
  try {
    const parts: CompletedPart[] = []
    for (let offset = 0, number = 1; offset < size; offset += partSize, number++) {
      const length = Math.min(partSize, size - offset)
      const { ETag } = await client.send(
        new UploadPartCommand({
          Bucket: bucket,
          Key: key,
          UploadId,
          PartNumber: number,
          Body: createReadStream(path, { start: offset, end: offset + length - 1 }),
          ContentLength: length,
        }),
      )
      parts.push({ PartNumber: number, ETag })
    }
    await client.send(
      new CompleteMultipartUploadCommand({
        Bucket: bucket,
        Key: key,
        UploadId,
        MultipartUpload: { Parts: parts },
      }),
    )
  } catch (error) {
    // Best effort: a failed abort leaves parts for the bucket's lifecycle rule, never an object.
    await client
      .send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId }))
      .catch(() => undefined)
    throw error
  }
}

/**
 * The upload of a blob whose digest (so key) is known while it is written: each
 * full part goes up as soon as the temp file holds it, one at a time, so a
 * large fill is mostly uploaded when it verifies. The multipart upload is
 * completed only in `publish`, which the writer calls after the content
 * hashed to its digest; `discard` aborts it. A blob that never fills a part
 * goes up in one PutObject at `publish`. If streaming fails (or would need
 * more than MAX_PARTS parts), `publish` starts over with uploadFile.
 */
export class StreamedUpload implements Publisher {
  #written = 0
  /** Parts started so far (the next part's number minus one). */
  #started = 0
  readonly #parts: CompletedPart[] = []
  #uploadId: Promise<string> | undefined
  #pump: Promise<void> | undefined
  #failed = false
  #completed = false
  readonly #abort = new AbortController()

  constructor(
    private readonly target: UploadTarget,
    private readonly tempPath: string,
  ) {}

  written(bytes: number): void {
    this.#written = bytes
    if (this.#pump !== undefined || bytes < (this.#started + 1) * this.target.partSizeBytes) return
    this.#pump = this.#uploadFullParts().finally(() => (this.#pump = undefined))
  }

  async publish(tempPath: string): Promise<void> {
    await this.#pump
    const { size } = await stat(tempPath)
    if (this.#uploadId === undefined) return uploadFile(this.target, tempPath, size)
    if (this.#failed || size > this.target.partSizeBytes * MAX_PARTS) {
      await this.discard()
      return uploadFile(this.target, tempPath, size)
    }
    try {
      const { partSizeBytes } = this.target
      for (let offset = this.#started * partSizeBytes; offset < size; offset += partSizeBytes)
        await this.#uploadPart(offset, Math.min(partSizeBytes, size - offset))
      await this.target.client.send(
        new CompleteMultipartUploadCommand({
          Bucket: this.target.bucket,
          Key: this.target.key,
          UploadId: await this.#uploadId,
          MultipartUpload: { Parts: this.#parts },
        }),
      )
      this.#completed = true
    } catch (error) {
      await this.discard()
      throw error
    }
  }

  async discard(): Promise<void> {
    if (this.#completed) return
    this.#abort.abort()
    await this.#pump
    const uploadId = await this.#uploadId?.catch(() => undefined)
    if (uploadId === undefined) return
    // Best effort: a failed abort leaves parts for the bucket's lifecycle rule, never an object.
    await this.target.client
      .send(
        new AbortMultipartUploadCommand({
          Bucket: this.target.bucket,
          Key: this.target.key,
          UploadId: uploadId,
        }),
      )
      .catch(() => undefined)
  }

  /** Uploads every full part the file holds, and those written meanwhile. */
  async #uploadFullParts(): Promise<void> {
    const { partSizeBytes } = this.target
    try {
      while (
        !this.#failed &&
        !this.#abort.signal.aborted &&
        this.#started < MAX_PARTS &&
        this.#written >= (this.#started + 1) * partSizeBytes
      )
        await this.#uploadPart(this.#started * partSizeBytes, partSizeBytes)
    } catch {
      // publish starts over; discard aborts what was uploaded.
      this.#failed = true
    }
  }

  async #uploadPart(offset: number, length: number): Promise<void> {
    const { client, bucket, key } = this.target
    this.#uploadId ??= client
      .send(
        new CreateMultipartUploadCommand({
          Bucket: bucket,
          Key: key,
          ContentType: 'application/octet-stream',
        }),
        { abortSignal: this.#abort.signal },
      )
      .then(({ UploadId }) => {
        if (UploadId === undefined) throw new Error('the object store gave no upload id')
        return UploadId
      })
    const number = ++this.#started
    const { ETag } = await client.send(
      new UploadPartCommand({
        Bucket: bucket,
        Key: key,
        UploadId: await this.#uploadId,
        PartNumber: number,
        Body: createReadStream(this.tempPath, { start: offset, end: offset + length - 1 }),
        ContentLength: length,
      }),
      { abortSignal: this.#abort.signal },
    )
    this.#parts.push({ PartNumber: number, ETag })
  }
}
