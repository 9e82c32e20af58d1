import { createReadStream } from 'node:fs'
import { mkdir, readdir, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import t from 'tap'
import { BlobStore } from '../../src/storage/blob-store.ts'
import { digestOf } from '../../src/storage/digest.ts'
import { BlobNotFoundError } from '../../src/storage/errors.ts'
import { tempDir } from '../helpers/config.ts'
import { drain, randomBlob, readAll } from '../helpers/streams.ts'
import { blobFile, filesUnder } from './fixtures/disk.ts'

const MiB = 1024 * 1024

t.test('opening a store creates blobs/sha256 and an empty tmp/', async (t) => {
  const root = join(await tempDir(t), 'store')
  const store = await BlobStore.open(root)
  t.equal(store.root, root)
  t.ok((await stat(join(root, 'blobs', 'sha256'))).isDirectory())
  t.same(await readdir(join(root, 'tmp')), [])
})

t.test('opening a store throws away whatever an earlier process left in tmp/', async (t) => {
  const root = await tempDir(t)
  await BlobStore.open(root)
  await writeFile(join(root, 'tmp', 'abc.part'), 'half a blob')
  await mkdir(join(root, 'tmp', 'nested'))
  await writeFile(join(root, 'tmp', 'nested', 'x'), 'y')
  await BlobStore.open(root)
  t.same(await readdir(join(root, 'tmp')), [])
})

t.test('content put under its digest reads back identical and hashes to its name', async (t) => {
  const root = await tempDir(t)
  const store = await BlobStore.open(root)
  const big = randomBlob(5 * MiB + 3)
  async function* uint8Chunks() {
    // Plain Uint8Arrays of uneven sizes, not Buffers.
    for (let at = 0; at < big.data.length; at += 700_001)
      yield new Uint8Array(big.data.subarray(at, at + 700_001))
  }
  t.same(await store.put(big.digest, uint8Chunks()), { size: big.data.length })
  const read = await readAll(await store.createReadStream(big.digest))
  t.ok(read.equals(big.data), 'identical bytes')
  const onDisk = await drain(createReadStream(blobFile(root, big.digest)))
  t.equal(onDisk.digest, big.digest, 'the file hashes to its name')
  t.same(await filesUnder(root), [blobFile(root, big.digest)], 'one file, where the layout says')
})

t.test('an empty blob is stored and read back empty', async (t) => {
  const root = await tempDir(t)
  const store = await BlobStore.open(root)
  const empty = digestOf('')
  t.same(await store.put(empty, Readable.from([])), { size: 0 })
  t.equal((await store.stat(empty))?.size, 0)
  const read = await drain(await store.createReadStream(empty, { verify: true }))
  t.same(read, { bytes: 0, digest: empty, error: undefined })
})

t.test('stat, has, delete and totalSize describe what is stored', async (t) => {
  const root = await tempDir(t)
  const store = await BlobStore.open(root)
  const a = randomBlob(MiB)
  const b = randomBlob(1234)
  t.equal(await store.stat(a.digest), undefined)
  t.equal(await store.has(a.digest), false)
  t.equal(await store.totalSize(), 0)
  await store.put(a.digest, Readable.from([a.data]))
  await store.put(b.digest, Readable.from([b.data]))
  const onDisk = await stat(blobFile(root, a.digest))
  t.same(await store.stat(a.digest), { size: MiB, mtimeMs: onDisk.mtimeMs })
  t.equal(await store.has(a.digest), true)
  t.equal(await store.totalSize(), MiB + 1234)
  t.equal(await store.delete(a.digest), true)
  t.equal(await store.delete(a.digest), false, 'deleting an absent blob says so')
  t.equal(await store.has(a.digest), false)
  t.equal(await store.totalSize(), 1234)
  await t.rejects(store.createReadStream(a.digest), BlobNotFoundError)
})

t.test('list yields every committed blob with its size and nothing else', async (t) => {
  const root = await tempDir(t)
  const store = await BlobStore.open(root)
  const blobs = [randomBlob(10), randomBlob(20), randomBlob(0)]
  for (const blob of blobs) await store.put(blob.digest, Readable.from([blob.data]))
  // Strays an operator or another tool might leave: none of them is a blob.
  await mkdir(join(root, 'blobs', 'sha256', 'zz'))
  await writeFile(join(root, 'blobs', 'sha256', 'zz', 'junk'), 'x')
  await mkdir(join(root, 'blobs', 'sha256', '00'), { recursive: true })
  await writeFile(join(root, 'blobs', 'sha256', '00', 'ff'.repeat(32)), 'misfiled')
  await writeFile(join(root, 'blobs', 'sha256', '00', 'notes.txt'), 'x')
  await writeFile(join(root, 'tmp', 'in-progress.part'), 'x')
  const listed: { digest: string; size: number }[] = []
  for await (const blob of store.list()) {
    t.type(blob.mtimeMs, 'number')
    listed.push({ digest: blob.digest, size: blob.size })
  }
  const expected = blobs.map((b) => ({ digest: b.digest, size: b.data.length }))
  const byDigest = (x: { digest: string }, y: { digest: string }) =>
    x.digest.localeCompare(y.digest)
  t.same(listed.sort(byDigest), expected.sort(byDigest))
})
