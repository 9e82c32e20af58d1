import { once } from 'node:events'
import { readdir, stat } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { BlobStore, READ_HIGH_WATER_MARK } from '../../src/storage/blob-store.ts'
import { BlobWriterClosedError, DigestMismatchError } from '../../src/storage/errors.ts'
import { tempDir } from '../helpers/config.ts'
import { randomBlob } from '../helpers/streams.ts'
import { blobFile, filesUnder } from './fixtures/disk.ts'

t.test('a writer writes a temp file in tmp/ that commit moves into blobs/', async (t) => {
  const root = await tempDir(t)
  const store = await BlobStore.open(root)
  const blob = randomBlob(300_000)
  const writer = await store.createWriter()
  t.equal(join(writer.tempPath, '..'), join(root, 'tmp'))
  writer.write(blob.data.subarray(0, 100_000))
  writer.write(blob.data.subarray(100_000))
  t.same(await writer.commit(blob.digest), { size: blob.data.length })
  t.equal(writer.bytesWritten, blob.data.length)
  t.same(await filesUnder(root), [blobFile(root, blob.digest)])
})

t.test('each writer gets its own temp file', async (t) => {
  const root = await tempDir(t)
  const store = await BlobStore.open(root)
  const writers = await Promise.all([store.createWriter(), store.createWriter()])
  t.not(writers[0].tempPath, writers[1].tempPath)
  t.equal((await readdir(join(root, 'tmp'))).length, 2)
  await Promise.all(writers.map((w) => w.abort()))
})

t.test('a writer asks its producer to wait once its buffer is full', async (t) => {
  const root = await tempDir(t)
  const store = await BlobStore.open(root)
  const blob = randomBlob(READ_HIGH_WATER_MARK * 2)
  const writer = await store.createWriter()
  t.equal(writer.write(blob.data), false, 'write() says to wait')
  await once(writer, 'drain')
  t.equal(writer.bytesWritten, blob.data.length, 'every byte was written before drain')
  t.equal((await stat(writer.tempPath)).size, blob.data.length)
  t.same(await writer.commit(blob.digest), { size: blob.data.length })
})

t.test('abort removes the temp file and may be called again', async (t) => {
  const root = await tempDir(t)
  const store = await BlobStore.open(root)
  const writer = await store.createWriter()
  writer.write(randomBlob(READ_HIGH_WATER_MARK * 3).data)
  await writer.abort()
  await writer.abort()
  t.same(await filesUnder(root), [])
  await t.rejects(writer.commit(randomBlob(1).digest), BlobWriterClosedError)
})

t.test('a mismatched commit removes the temp file and closes the writer', async (t) => {
  const root = await tempDir(t)
  const store = await BlobStore.open(root)
  const blob = randomBlob(1000)
  const writer = await store.createWriter()
  writer.write(blob.data)
  await t.rejects(writer.commit(randomBlob(1000).digest), DigestMismatchError)
  t.same(await filesUnder(root), [])
  await t.rejects(writer.commit(blob.digest), BlobWriterClosedError)
})

t.test('a second commit is refused and the stored blob stays', async (t) => {
  const root = await tempDir(t)
  const store = await BlobStore.open(root)
  const blob = randomBlob(10)
  const writer = await store.createWriter()
  writer.end(blob.data)
  await writer.commit(blob.digest)
  await t.rejects(writer.commit(blob.digest), BlobWriterClosedError)
  await writer.abort()
  t.same(await filesUnder(root), [blobFile(root, blob.digest)])
})

t.test('a writer destroyed by its user cannot be committed and leaves nothing', async (t) => {
  const root = await tempDir(t)
  const store = await BlobStore.open(root)
  const blob = randomBlob(1000)
  const writer = await store.createWriter()
  writer.write(blob.data)
  writer.destroy()
  await t.rejects(writer.commit(blob.digest), { code: 'ERR_STREAM_DESTROYED' })
  t.same(await filesUnder(root), [])
})
