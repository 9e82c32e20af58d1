import { copyFile, readdir, readFile, readlink } from 'node:fs/promises'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import t, { type Test } from 'tap'
import { BlobStore, type BlobStoreFs } from '../../src/storage/blob-store.ts'
import { BlobChangedError, DigestMismatchError } from '../../src/storage/errors.ts'
import { FileHasher } from '../../src/storage/file-hasher.ts'
import { tempDir } from '../helpers/config.ts'
import { drain, randomBlob } from '../helpers/streams.ts'
import { blobFile, flipByte, recordingFs } from './fixtures/disk.ts'

const MiB = 1024 * 1024
/** How long a test waits for a read to release its file, or for the worker to start reading. */
const WAIT_MS = 5_000

/** Whether `check` comes true within WAIT_MS, asked every `intervalMs`. */
async function within(check: () => Promise<boolean>, intervalMs: number): Promise<boolean> {
  const deadline = Date.now() + WAIT_MS
  for (;;) {
    if (await check()) return true
    if (Date.now() >= deadline) return false
    await new Promise((resolve) => setTimeout(resolve, intervalMs))
  }
}

/** Whether this process holds no descriptor of `path`, waiting up to WAIT_MS for it. */
async function closedWithin(path: string): Promise<boolean> {
  return within(async () => {
    const fds = await readdir('/proc/self/fd')
    const targets = await Promise.all(
      fds.map((fd) => readlink(join('/proc/self/fd', fd)).catch(() => '')),
    )
    return !targets.includes(path)
  }, 10)
}

type Mode = 'inline' | 'worker thread'

async function openStore(t: Test, mode: Mode, fs?: BlobStoreFs) {
  const root = await tempDir(t)
  if (mode === 'inline') return { root, store: await BlobStore.open(root, fs ? { fs } : {}) }
  const hasher = new FileHasher(1)
  t.teardown(() => hasher.close())
  return { root, hasher, store: await BlobStore.open(root, { hasher, ...(fs ? { fs } : {}) }) }
}

/** Bytes each thread of this process has read so far (`rchar`), by thread id. */
async function threadReads(): Promise<Map<string, number>> {
  const reads = new Map<string, number>()
  for (const tid of await readdir('/proc/self/task')) {
    const io = await readFile(`/proc/self/task/${tid}/io`, 'utf8').catch(() => '')
    reads.set(tid, Number(/^rchar: (\d+)$/m.exec(io)?.[1] ?? 0))
  }
  return reads
}

/** Waits until one thread has read at least `bytes` more than in `before`. */
async function someThreadRead(before: Map<string, number>, bytes: number): Promise<boolean> {
  return within(async () => {
    for (const [tid, read] of await threadReads())
      if (read - (before.get(tid) ?? 0) >= bytes) return true
    return false
  }, 1)
}

for (const mode of ['inline', 'worker thread'] as const) {
  t.test(`a good blob reads whole and unchanged with verify (${mode})`, async (t) => {
    const { store } = await openStore(t, mode)
    const blob = randomBlob(3 * MiB + 5)
    await store.put(blob.digest, Readable.from([blob.data]))
    const reads = await Promise.all(
      Array.from({ length: 4 }, async () =>
        drain(await store.createReadStream(blob.digest, { verify: true })),
      ),
    )
    for (const read of reads)
      t.same(read, { bytes: blob.data.length, digest: blob.digest, error: undefined })
  })

  t.test(`a blob that rotted on disk is cut before its last byte (${mode})`, async (t) => {
    const { root, store } = await openStore(t, mode)
    const blob = randomBlob(3 * MiB)
    await store.put(blob.digest, Readable.from([blob.data]))
    await flipByte(blobFile(root, blob.digest), 2 * MiB + 42)

    const verified = await drain(await store.createReadStream(blob.digest, { verify: true }))
    t.type(verified.error, DigestMismatchError)
    t.match(verified.error, { expected: blob.digest, size: blob.data.length })
    t.not((verified.error as DigestMismatchError).actual, blob.digest)
    t.ok(verified.bytes < blob.data.length, `delivered ${verified.bytes} of ${blob.data.length}`)

    const unverified = await drain(await store.createReadStream(blob.digest))
    t.equal(unverified.bytes, blob.data.length, 'without verify the bytes come through')
    t.equal(unverified.error, undefined)
  })

  t.test(`a verified read closes its file however it ends (${mode})`, async (t) => {
    const { root, store } = await openStore(t, mode)
    const blob = randomBlob(3 * MiB + 5)
    await store.put(blob.digest, Readable.from([blob.data]))
    const path = blobFile(root, blob.digest)

    t.equal(
      (await drain(await store.createReadStream(blob.digest, { verify: true }))).error,
      undefined,
    )
    t.ok(await closedWithin(path), 'read to its end')

    const early = await store.createReadStream(blob.digest, { verify: true })
    await new Promise<void>((resolve) => early.once('data', () => resolve()))
    early.destroy()
    t.ok(await closedWithin(path), 'reader destroyed after its first chunk')

    await flipByte(path, 2 * MiB)
    t.type(
      (await drain(await store.createReadStream(blob.digest, { verify: true }))).error,
      DigestMismatchError,
    )
    t.ok(await closedWithin(path), 'cut on a mismatch')
  })

  t.test(`a small rotted blob delivers nothing with verify (${mode})`, async (t) => {
    const { root, store } = await openStore(t, mode)
    const blob = randomBlob(1000)
    await store.put(blob.digest, Readable.from([blob.data]))
    await flipByte(blobFile(root, blob.digest), 999)
    const read = await drain(await store.createReadStream(blob.digest, { verify: true }))
    t.type(read.error, DigestMismatchError)
    t.equal(read.bytes, 0)
  })

  t.test(`a range covering the whole blob is verified like a whole read (${mode})`, async (t) => {
    const { root, store } = await openStore(t, mode)
    const blob = randomBlob(2 * MiB)
    await store.put(blob.digest, Readable.from([blob.data]))
    await flipByte(blobFile(root, blob.digest), 7)
    for (const range of [{ start: 0 }, { start: 0, end: 2 * MiB - 1 }, { end: 5 * MiB }]) {
      const read = await drain(
        await store.createReadStream(blob.digest, { verify: true, ...range }),
      )
      t.type(read.error, DigestMismatchError, JSON.stringify(range))
      t.ok(read.bytes < blob.data.length)
    }
    // A part of a blob cannot be checked against the digest of the whole: it is served as is.
    const part = await drain(
      await store.createReadStream(blob.digest, { verify: true, start: 0, end: 2 * MiB - 2 }),
    )
    t.same({ bytes: part.bytes, error: part.error }, { bytes: 2 * MiB - 1, error: undefined })
  })
}

t.test('an error reading a blob file reaches the verified reader', async (t) => {
  const root = await tempDir(t)
  const blob = randomBlob(1000)
  // The blob's name opens a directory: open succeeds, every read fails (EISDIR).
  const fs = recordingFs([], (path) => (path.endsWith(blob.digest.slice(7)) ? root : undefined))
  const store = await BlobStore.open(root, { fs })
  await BlobStore.open(root).then((writer) => writer.put(blob.digest, Readable.from([blob.data])))
  const read = await drain(await store.createReadStream(blob.digest, { verify: true }))
  t.match(read, { bytes: 0, error: { code: 'EISDIR' } })
})

t.test(
  'a hash begun before an in-place change does not vouch for a read begun after it',
  async (t) => {
    const { root, store, hasher } = await openStore(t, 'worker thread')
    const blob = randomBlob(128 * MiB)
    await store.put(blob.digest, Readable.from([blob.data]))
    const path = blobFile(root, blob.digest)

    // Another reader's (or a scrub's) hash is under way and has read the first byte...
    const before = await threadReads()
    const running = hasher!.hash(path)
    t.ok(await someThreadRead(before, MiB), 'the worker is reading the file')
    // ...when the first byte rots, and a new read joins that hash.
    await flipByte(path, 0)
    const read = await drain(await store.createReadStream(blob.digest, { verify: true }))
    t.equal((await running).digest, blob.digest, 'the running hash read the byte before it changed')
    t.type(read.error, DigestMismatchError, 'the new read is checked against what it serves')
    t.ok(read.bytes < blob.data.length, `delivered ${read.bytes} of ${blob.data.length}`)
  },
)

t.test('a worker-thread check of a file other than the one served cuts the read', async (t) => {
  // The file at the blob's path is replaced between the reader's open and the
  // worker's: simulated by serving a rotted copy while the path holds the good one.
  const served = join(await tempDir(t), 'rotted-copy')
  let blobPath = ''
  const fs = recordingFs([], (path) => (path === blobPath ? served : undefined))
  const { root, store } = await openStore(t, 'worker thread', fs)
  const blob = randomBlob(2 * MiB)
  await store.put(blob.digest, Readable.from([blob.data]))
  await copyFile(blobFile(root, blob.digest), served)
  await flipByte(served, 100)
  blobPath = blobFile(root, blob.digest)

  const read = await drain(await store.createReadStream(blob.digest, { verify: true }))
  t.type(read.error, BlobChangedError)
  t.ok(read.bytes < blob.data.length, `delivered ${read.bytes} of ${blob.data.length}`)
})

t.test(
  'open reads a blob that fits one read whole, and refuses a rotten one before any byte',
  async (t) => {
    const { root, store } = await openStore(t, 'worker thread')
    const oneRead = store.readBuffers.size
    for (const [size, whole] of [
      [1000, true],
      [oneRead, true],
      [oneRead + 1, false],
    ] as const) {
      const blob = randomBlob(size)
      await store.put(blob.digest, Readable.from([blob.data]))
      const path = blobFile(root, blob.digest)
      const opened = await store.open(blob.digest, { verify: true })
      t.equal(
        Buffer.isBuffer(opened?.body),
        whole,
        `${size} bytes: ${whole ? 'whole' : 'a stream'}`,
      )
      t.same(await drain(opened?.body ?? Buffer.alloc(0)), {
        bytes: size,
        digest: blob.digest,
        error: undefined,
      })
      t.ok(await closedWithin(path), `${size} bytes: its file closed`)
      if (!whole) continue
      await flipByte(path, size - 1)
      await t.rejects(store.open(blob.digest, { verify: true }), DigestMismatchError)
      t.ok(await closedWithin(path), `${size} bytes, rotten: its file closed`)
      const unverified = await store.open(blob.digest)
      t.equal(
        (await drain(unverified?.body ?? Buffer.alloc(0))).bytes,
        size,
        'unverified, all of it',
      )
    }
  },
)
