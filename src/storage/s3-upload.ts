/**
 * Uploads a verified local file to its final key. A file up to one part goes
 * in one PutObject; a larger one in a multipart upload, which S3 makes visible
 * only at CompleteMultipartUpload: a crash or failure part-way leaves no object
 * (only parts, removed by AbortMultipartUpload or the bucket's lifecycle rule
 * for incomplete uploads).
 */
import { createReadStream } from 'node:fs'
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  PutObjectCommand,
  UploadPartCommand,
  type CompletedPart,
  type S3Client,
} from '@aws-sdk/client-s3'

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
