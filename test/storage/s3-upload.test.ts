/**
 * How the S3 store uploads, seen from the requests it sends to a real s3rver:
 * with the digest known, full parts go up while the blob is still being
 * written, and the object appears only when the verified commit completes the
 * upload; a mismatch aborts it; without the digest the commit uploads. The
 * client is the store's own; a middleware only records the commands it sends.
 */
import t, { type Test } from 'tap'
import type { S3Client } from '@aws-sdk/client-s3'
import { S3BlobStore } from '../../src/storage/s3-store.ts'
import { createS3Client } from '../../src/storage/s3-client.ts'
import { digestOf } from '../../src/storage/digest.ts'
import { DigestMismatchError } from '../../src/storage/errors.ts'
import type { BlobWriter } from '../../src/storage/blob-writer.ts'
import { tempDir } from '../helpers/config.ts'
import { S3RVER_KEY, startS3rver, type S3rver } from '../helpers/s3rver.ts'
import { drain, randomBlob } from '../helpers/streams.ts'

const MiB = 1024 * 1024
/** Bound on waiting for the parts uploaded in the background. */
const PARTS_TIMEOUT_MS = 20_000

/** A client that records the name of every command it completes, and tells who waits for a count. */
function recordingClient(t: Test, s3: S3rver) {
  const client: S3Client = createS3Client({
    region: 'us-east-1',
    endpoint: s3.endpoint,
    pathStyle: true,
    credentials: S3RVER_KEY,
  })
  t.teardown(() => client.destroy())
  const sent: string[] = []
  const tried: string[] = []
  const waiters: { name: string; count: number; wake: () => void }[] = []
  client.middlewareStack.add(
    (next, context) => async (args) => {
      tried.push(context.commandName ?? '')
      const result = await next(args)
      sent.push(context.commandName ?? '')
      for (const w of waiters) if (count(w.name) >= w.count) w.wake()
      return result
    },
    { step: 'initialize' },
  )
  const count = (name: string) => sent.filter((n) => n === name).length
  const until = (name: string, n: number) =>
    new Promise<void>((resolve, reject) => {
      if (count(name) >= n) return resolve()
      const timer = setTimeout(
        () => reject(new Error(`no ${n} ${name} in ${PARTS_TIMEOUT_MS} ms: ${sent.join(', ')}`)),
        PARTS_TIMEOUT_MS,
      )
      waiters.push({ name, count: n, wake: () => (clearTimeout(timer), resolve()) })
    })
  return { client, count, until, tried: (name: string) => tried.filter((n) => n === name).length }
}

async function openStore(t: Test, s3: S3rver, client: S3Client): Promise<S3BlobStore> {
  return S3BlobStore.open({
    client,
    bucket: s3.bucket,
    prefix: '',
    partSizeBytes: 5 * MiB,
    spoolDir: await tempDir(t, 'pt-spool-'),
  })
}

function write(writer: BlobWriter, data: Buffer): Promise<void> {
  return new Promise((resolve, reject) =>
    writer.write(data, (error) => (error ? reject(error) : resolve())),
  )
}

t.test('full parts go up while the blob is written; the object appears at commit', async (t) => {
  const s3 = await startS3rver(t)
  const { client, count, until } = recordingClient(t, s3)
  const store = await openStore(t, s3, client)
  const blob = randomBlob(12 * MiB + 5)
  const writer = await store.createWriter(blob.digest)
  await write(writer, blob.data.subarray(0, 11 * MiB))
  await until('UploadPartCommand', 2)
  t.equal(count('CompleteMultipartUploadCommand'), 0, 'not completed while written')
  t.equal(await store.has(blob.digest), false, 'nothing visible yet')
  t.same(await s3.keys(), [])
  await write(writer, blob.data.subarray(11 * MiB))
  t.same(await writer.commit(blob.digest), { size: blob.data.length })
  t.equal(count('UploadPartCommand'), 3, 'the last part at commit')
  t.equal(count('CompleteMultipartUploadCommand'), 1)
  t.equal(count('PutObjectCommand'), 0)
  const read = await drain(await store.createReadStream(blob.digest, { verify: true }))
  t.same(read, { bytes: blob.data.length, digest: blob.digest, error: undefined })
})

t.test('content that fails its digest aborts the streamed upload', async (t) => {
  const s3 = await startS3rver(t)
  const { client, count, until, tried } = recordingClient(t, s3)
  const store = await openStore(t, s3, client)
  const blob = randomBlob(11 * MiB)
  const claimed = digestOf('another blob')
  const writer = await store.createWriter(claimed)
  await write(writer, blob.data)
  await until('UploadPartCommand', 2)
  await t.rejects(writer.commit(claimed), DigestMismatchError)
  // s3rver does not implement AbortMultipartUpload (it answers 405): the request is sent all the same.
  t.equal(tried('AbortMultipartUploadCommand'), 1, 'the upload is aborted')
  t.equal(count('CompleteMultipartUploadCommand'), 0)
  t.same(await s3.keys(), [], 'no object')
  t.equal(await store.removeStaleTemps(Date.now() + 3_600_000, { dryRun: true }), 0)
})

t.test('without a digest up front, the commit uploads the verified file', async (t) => {
  const s3 = await startS3rver(t)
  const { client, count } = recordingClient(t, s3)
  const store = await openStore(t, s3, client)
  const blob = randomBlob(11 * MiB)
  const writer = await store.createWriter()
  await write(writer, blob.data)
  t.equal(count('UploadPartCommand'), 0, 'nothing uploaded before the commit')
  await writer.commit(blob.digest)
  t.equal(count('UploadPartCommand'), 3)
  t.equal(count('CompleteMultipartUploadCommand'), 1)
  t.same(await s3.keys(), [`blobs/sha256/${blob.digest.slice(7, 9)}/${blob.digest.slice(7)}`])
})
