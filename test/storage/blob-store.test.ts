import { once } from 'node:events'
import * as realFs from 'node:fs/promises'
import { readdir, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { BlobStore, type BlobStoreFs } from '../../src/storage/blob-store.ts'
import {
  DigestMismatchError,
  InvalidDigestError,
  StorageWriteError,
  BlobNotFoundError,
} from '../../src/storage/errors.ts'
import { spawnNode } from '../helpers/cli.ts'
import { tempDir } from '../helpers/config.ts'
import { drain, randomBlob, readAll } from '../helpers/streams.ts'

const MiB = 1024 * 1024
const CHILD = fileURLToPath(new URL('../helpers/slow-put-child.ts', import.meta.url))

async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true })
  return entries.filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name))
}

t.test('content put under its digest reads back identical and hashes to its name', async (t) => {
  const root = await tempDir(t)
  const store = await BlobStore.open(root)
  const big = randomBlob(5 * MiB + 3)
  const empty = randomBlob(0)
  t.same(
    await store.put(big.digest, Readable.from([big.data.subarray(0, MiB), big.data.subarray(MiB)])),
    { size: big.data.length },
  )
  t.same(await store.put(empty.digest, Readable.from([])), { size: 0 })
  t.equal(
    (await drain(await store.createReadStream(big.digest, { verify: true }))).digest,
    big.digest,
  )
  t.equal(
    (await drain(await store.createReadStream(empty.digest, { verify: true }))).digest,
    empty.digest,
  )
  const hex = big.digest.slice(7)
  t.same(
    (await filesUnder(join(root, 'blobs'))).sort(),
    [
      join(root, 'blobs/sha256', hex.slice(0, 2), hex),
      join(root, 'blobs/sha256', empty.digest.slice(7, 9), empty.digest.slice(7)),
    ].sort(),
  )
  t.equal((await store.stat(big.digest))?.size, big.data.length)
  t.equal(await store.totalSize(), big.data.length)
  const listed = []
  for await (const blob of store.list()) listed.push(blob.digest)
  t.same(listed.sort(), [big.digest, empty.digest].sort())
  t.equal(await store.delete(big.digest), true)
  t.equal(await store.delete(big.digest), false)
  t.equal(await store.has(big.digest), false)
  await t.rejects(store.createReadStream(big.digest), BlobNotFoundError)
})

t.test('a mismatch fails with expected and actual digests and leaves nothing behind', async (t) => {
  const root = await tempDir(t)
  const store = await BlobStore.open(root)
  const claimed = randomBlob(100)
  const actual = randomBlob(MiB)
  const error = await store
    .put(claimed.digest, Readable.from([actual.data]))
    .catch((e: unknown) => e)
  t.type(error, DigestMismatchError)
  t.equal((error as DigestMismatchError).expected, claimed.digest)
  t.equal((error as DigestMismatchError).actual, actual.digest)
  t.same((await filesUnder(join(root, 'blobs'))).sort(), [])
  t.same(await readdir(join(root, 'tmp')), [])
})

t.test('a process killed mid-put leaves no blob, and the next start cleans tmp/', async (t) => {
  const root = await tempDir(t)
  const child = spawnNode(t, CHILD, [root])
  await once(child.stdout, 'data')
  t.not((await readdir(join(root, 'tmp'))).length, 0, 'a temp file was being written')
  child.kill('SIGKILL')
  await once(child, 'exit')
  t.same((await filesUnder(join(root, 'blobs'))).sort(), [], 'no blob')
  await BlobStore.open(root)
  t.same(await readdir(join(root, 'tmp')), [], 'tmp/ cleaned at start')
})

t.test('20 concurrent puts of one digest give one file and 20 successes', async (t) => {
  const root = await tempDir(t)
  const store = await BlobStore.open(root)
  const blob = randomBlob(2 * MiB)
  const results = await Promise.allSettled(
    Array.from({ length: 20 }, () =>
      store.put(blob.digest, Readable.from([blob.data.subarray(0, MiB), blob.data.subarray(MiB)])),
    ),
  )
  t.equal(results.filter((r) => r.status === 'fulfilled').length, 20)
  t.equal((await filesUnder(join(root, 'blobs'))).length, 1)
  t.same(await readdir(join(root, 'tmp')), [])
  t.equal(
    (await drain(await store.createReadStream(blob.digest, { verify: true }))).digest,
    blob.digest,
  )
})

t.test('traversal-shaped digests are rejected before any filesystem call', async (t) => {
  const root = await tempDir(t)
  const calls: string[] = []
  const recording = new Proxy(realFs, {
    get(target, prop: string) {
      const value = (target as unknown as Record<string, unknown>)[prop]
      if (typeof value !== 'function') return value
      return (...args: unknown[]) => {
        calls.push(`${prop} ${String(args[0])}`)
        return (value as (...a: unknown[]) => unknown).apply(target, args)
      }
    },
  }) as BlobStoreFs
  const store = await BlobStore.open(root, { fs: recording })
  const writer = await store.createWriter()
  calls.length = 0
  const bad = [
    'sha256:../../../etc/passwd',
    '../../etc/passwd',
    `sha256:${'a'.repeat(63)}`,
    `sha256:${'A'.repeat(64)}`,
    `sha512:${'a'.repeat(128)}`,
    `sha256:${'a'.repeat(62)}/..`,
    `sha256:${'a'.repeat(63)}\0`,
    '',
  ]
  for (const digest of bad) {
    await t.rejects(store.stat(digest), InvalidDigestError, `stat ${digest}`)
    await t.rejects(store.has(digest), InvalidDigestError)
    await t.rejects(store.put(digest, Readable.from([Buffer.from('x')])), InvalidDigestError)
    await t.rejects(store.createReadStream(digest), InvalidDigestError)
    await t.rejects(store.delete(digest), InvalidDigestError)
  }
  t.same(calls, [], 'no filesystem call was made')
  await t.rejects(writer.commit('sha256:../x'), InvalidDigestError)
  t.notOk(
    calls.some((c) => c.startsWith('rename')),
    'commit did not rename anything',
  )
})

t.test('verified reads cut a blob that rotted on disk before its last byte', async (t) => {
  const root = await tempDir(t)
  const store = await BlobStore.open(root)
  const blob = randomBlob(3 * MiB)
  await store.put(blob.digest, Readable.from([blob.data]))
  const hex = blob.digest.slice(7)
  const fh = await realFs.open(join(root, 'blobs/sha256', hex.slice(0, 2), hex), 'r+')
  await fh.write(Buffer.from([(blob.data[42] ?? 0) ^ 1]), 0, 1, 42)
  await fh.close()
  const verified = await drain(await store.createReadStream(blob.digest, { verify: true }))
  t.type(verified.error, DigestMismatchError)
  t.ok(
    verified.bytes < blob.data.length,
    `delivered ${verified.bytes} of ${blob.data.length} bytes`,
  )
  const unverified = await drain(await store.createReadStream(blob.digest))
  t.equal(unverified.bytes, blob.data.length, 'without verification the bytes come through')
})

t.test('range reads return exactly the requested bytes', async (t) => {
  const root = await tempDir(t)
  const store = await BlobStore.open(root)
  const blob = randomBlob(MiB)
  await store.put(blob.digest, Readable.from([blob.data]))
  const range = await store.createReadStream(blob.digest, { start: 1000, end: 1999, verify: true })
  t.same(await readAll(range), blob.data.subarray(1000, 2000))
})

t.test('an aborted or failing source leaves nothing in tmp/ or blobs/', async (t) => {
  const root = await tempDir(t)
  const store = await BlobStore.open(root)
  const blob = randomBlob(MiB)
  const controller = new AbortController()
  async function* slow() {
    yield blob.data.subarray(0, 1000)
    controller.abort()
    await new Promise((r) => setTimeout(r, 10))
    yield blob.data.subarray(1000)
  }
  await t.rejects(store.put(blob.digest, slow(), { signal: controller.signal }))
  async function* failing() {
    yield blob.data.subarray(0, 1000)
    throw new Error('source broke')
  }
  await t.rejects(store.put(blob.digest, failing()), { message: 'source broke' })
  t.same(await readdir(join(root, 'tmp')), [])
  t.same((await filesUnder(join(root, 'blobs'))).sort(), [])
})

t.test(
  'checkWritable fails with StorageWriteError when the temp area cannot be written',
  async (t) => {
    const root = await tempDir(t)
    const store = await BlobStore.open(root)
    await store.checkWritable()
    t.same(await readdir(join(root, 'tmp')), [], 'the probe file is removed')
    await rm(join(root, 'tmp'), { recursive: true })
    await writeFile(join(root, 'tmp'), '')
    await t.rejects(store.checkWritable(), StorageWriteError)
    await t.rejects(store.createWriter(), StorageWriteError)
  },
)

t.test(
  'verified reads hashed on a worker thread cut a rotted blob and pass a good one',
  async (t) => {
    const { FileHasher } = await import('../../src/storage/file-hasher.ts')
    const hasher = new FileHasher(1)
    t.teardown(() => hasher.close())
    const root = await tempDir(t)
    const store = await BlobStore.open(root, { hasher })
    const blob = randomBlob(3 * MiB)
    await store.put(blob.digest, Readable.from([blob.data]))
    const good = await Promise.all(
      Array.from({ length: 4 }, async () =>
        drain(await store.createReadStream(blob.digest, { verify: true })),
      ),
    )
    t.ok(
      good.every((r) => r.digest === blob.digest && r.error === undefined),
      'concurrent verified reads pass',
    )
    const hex = blob.digest.slice(7)
    const fh = await realFs.open(join(root, 'blobs/sha256', hex.slice(0, 2), hex), 'r+')
    await fh.write(Buffer.from([(blob.data[7] ?? 0) ^ 1]), 0, 1, 7)
    await fh.close()
    const bad = await drain(await store.createReadStream(blob.digest, { verify: true }))
    t.type(bad.error, DigestMismatchError)
    t.ok(bad.bytes < blob.data.length, `delivered ${bad.bytes} of ${blob.data.length} bytes`)
  },
)
