import { readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import t from 'tap'
import { BlobStore } from '../../src/storage/blob-store.ts'
import { DigestMismatchError } from '../../src/storage/errors.ts'
import { tempDir } from '../helpers/config.ts'
import { randomBlob } from '../helpers/streams.ts'
import { filesUnder } from './fixtures/disk.ts'

const MiB = 1024 * 1024

t.test('content that does not hash to its digest is refused and leaves nothing', async (t) => {
  const root = await tempDir(t)
  const store = await BlobStore.open(root)
  const claimed = randomBlob(100)
  const actual = randomBlob(3 * MiB)
  const error = await store
    .put(claimed.digest, Readable.from([actual.data]))
    .catch((e: unknown) => e)
  t.type(error, DigestMismatchError)
  t.match(error, {
    code: 'PT_DIGEST_MISMATCH',
    expected: claimed.digest,
    actual: actual.digest,
    size: actual.data.length,
  })
  t.same(await filesUnder(join(root, 'blobs')), [], 'nothing in blobs/')
  t.same(await readdir(join(root, 'tmp')), [], 'nothing in tmp/')
  t.equal(await store.has(claimed.digest), false)
  t.equal(await store.has(actual.digest), false, 'not stored under its real digest either')
})

t.test('a truncated body is refused like any other mismatch', async (t) => {
  const root = await tempDir(t)
  const store = await BlobStore.open(root)
  const blob = randomBlob(MiB)
  await t.rejects(
    store.put(blob.digest, Readable.from([blob.data.subarray(0, MiB - 1)])),
    DigestMismatchError,
  )
  t.same(await filesUnder(root), [])
})
