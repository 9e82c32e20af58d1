import { readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import t from 'tap'
import { BlobStore } from '../../src/storage/blob-store.ts'
import { tempDir } from '../helpers/config.ts'
import { drain, randomBlob } from '../helpers/streams.ts'
import { blobFile, filesUnder } from './fixtures/disk.ts'

const MiB = 1024 * 1024

t.test('20 concurrent puts of one digest give one file and 20 successes', async (t) => {
  const root = await tempDir(t)
  const store = await BlobStore.open(root)
  const blob = randomBlob(2 * MiB + 1)
  const results = await Promise.allSettled(
    Array.from({ length: 20 }, () =>
      store.put(blob.digest, Readable.from([blob.data.subarray(0, MiB), blob.data.subarray(MiB)])),
    ),
  )
  t.same(
    results.map((r) => (r.status === 'fulfilled' ? r.value.size : String(r.reason))),
    Array.from({ length: 20 }, () => blob.data.length),
    'every put succeeded',
  )
  t.same(await filesUnder(join(root, 'blobs')), [blobFile(root, blob.digest)], 'one file')
  t.same(await readdir(join(root, 'tmp')), [], 'no temp files left')
  const read = await drain(await store.createReadStream(blob.digest, { verify: true }))
  t.same(read, { bytes: blob.data.length, digest: blob.digest, error: undefined })
})

t.test('a put of a blob that is already stored succeeds and keeps one file', async (t) => {
  const root = await tempDir(t)
  const store = await BlobStore.open(root)
  const blob = randomBlob(1000)
  await store.put(blob.digest, Readable.from([blob.data]))
  const reader = await store.createReadStream(blob.digest)
  t.same(await store.put(blob.digest, Readable.from([blob.data])), { size: 1000 })
  t.equal((await drain(reader)).digest, blob.digest, 'a reader that had it open still reads it')
  t.same(await filesUnder(root), [blobFile(root, blob.digest)])
})
