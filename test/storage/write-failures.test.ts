import { existsSync } from 'node:fs'
import { open, readdir, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import t from 'tap'
import { BlobStore } from '../../src/storage/blob-store.ts'
import { digestOf } from '../../src/storage/digest.ts'
import { StorageWriteError } from '../../src/storage/errors.ts'
import { tempDir } from '../helpers/config.ts'
import { randomBlob } from '../helpers/streams.ts'
import { filesUnder, recordingFs } from './fixtures/disk.ts'

const MiB = 1024 * 1024

t.test('a put aborted midway rejects and leaves nothing in tmp/ or blobs/', async (t) => {
  const root = await tempDir(t)
  const store = await BlobStore.open(root)
  const blob = randomBlob(MiB)
  const controller = new AbortController()
  async function* abortsAfterTheFirstChunk() {
    yield blob.data.subarray(0, 1000)
    controller.abort()
    yield blob.data.subarray(1000)
  }
  await t.rejects(
    store.put(blob.digest, abortsAfterTheFirstChunk(), { signal: controller.signal }),
    {
      name: 'AbortError',
    },
  )
  t.same(await filesUnder(root), [])
})

t.test('a put with an already aborted signal stores nothing', async (t) => {
  const root = await tempDir(t)
  const store = await BlobStore.open(root)
  const blob = randomBlob(1000)
  await t.rejects(
    store.put(blob.digest, Readable.from([blob.data]), { signal: AbortSignal.abort() }),
    { name: 'AbortError' },
  )
  t.same(await filesUnder(root), [])
})

t.test('a source that errors midway fails the put with its error and leaves nothing', async (t) => {
  const root = await tempDir(t)
  const store = await BlobStore.open(root)
  const blob = randomBlob(MiB)
  async function* breaks() {
    yield blob.data.subarray(0, 600_000)
    throw new Error('source broke')
  }
  await t.rejects(store.put(blob.digest, breaks()), { message: 'source broke' })
  let reads = 0
  const stream = new Readable({
    read() {
      if (reads++ === 0) this.push(blob.data.subarray(0, 1000))
      else this.destroy(new Error('connection reset'))
    },
  })
  await t.rejects(store.put(blob.digest, stream), { message: 'connection reset' })
  t.same(await filesUnder(root), [])
})

t.test(
  'a full disk fails the put with StorageWriteError carrying ENOSPC',
  { skip: existsSync('/dev/full') ? false : 'needs /dev/full' },
  async (t) => {
    const root = await tempDir(t)
    // Temp files go to /dev/full, where every write fails with ENOSPC.
    const fs = recordingFs([], (path) => (path.endsWith('.part') ? '/dev/full' : undefined))
    const store = await BlobStore.open(root, { fs })
    const blob = randomBlob(MiB)
    const error = await store.put(blob.digest, Readable.from([blob.data])).catch((e: unknown) => e)
    t.type(error, StorageWriteError)
    t.match(error, { code: 'PT_STORAGE_WRITE', cause: { code: 'ENOSPC' } })
    t.same(await filesUnder(root), [])
  },
)

t.test(
  'a store whose tmp/ cannot be written fails createWriter and put with StorageWriteError',
  async (t) => {
    const root = await tempDir(t)
    const store = await BlobStore.open(root)
    // Tests run as root, so permissions would not stop a write: a file where tmp/ should be does.
    await rm(join(root, 'tmp'), { recursive: true })
    await writeFile(join(root, 'tmp'), '')
    await t.rejects(store.createWriter(), StorageWriteError)
    const blob = randomBlob(10)
    await t.rejects(store.put(blob.digest, Readable.from([blob.data])), StorageWriteError)
  },
)

t.test('checkWritable passes on a writable store and leaves no probe behind', async (t) => {
  const root = await tempDir(t)
  const store = await BlobStore.open(root)
  await store.checkWritable()
  t.same(await readdir(join(root, 'tmp')), [])
})

t.test('checkWritable rejects with StorageWriteError when tmp/ cannot be written', async (t) => {
  const root = await tempDir(t)
  const store = await BlobStore.open(root)
  await rm(join(root, 'tmp'), { recursive: true })
  await writeFile(join(root, 'tmp'), '')
  const error = await store.checkWritable().catch((e: unknown) => e)
  t.type(error, StorageWriteError)
  t.match(error, { cause: { code: 'ENOTDIR' } })
  t.notMatch((error as Error).message, root, 'the message names no path')
})

t.test(
  'checkWritable rejects with StorageWriteError when the disk is full',
  { skip: existsSync('/dev/full') ? false : 'needs /dev/full' },
  async (t) => {
    const root = await tempDir(t)
    const fs = recordingFs([], (path) => (path.includes('.probe-') ? '/dev/full' : undefined))
    const store = await BlobStore.open(root, { fs })
    const error = await store.checkWritable().catch((e: unknown) => e)
    t.type(error, StorageWriteError)
    t.match(error, { cause: { code: 'ENOSPC' } })
    t.same(await readdir(join(root, 'tmp')), [])
  },
)

/** Whether fsync on /dev/null fails here (it does on Linux: EINVAL), to stand in for a failing fsync. */
async function fsyncFailsOnDevNull(): Promise<boolean> {
  if (!existsSync('/dev/null')) return false
  const fh = await open('/dev/null', 'w')
  try {
    await fh.sync()
    return false
  } catch {
    return true
  } finally {
    await fh.close()
  }
}

const FSYNC_FAILS_ON_DEV_NULL = await fsyncFailsOnDevNull()

t.test(
  'a failed fsync fails commit and put with StorageWriteError',
  { skip: FSYNC_FAILS_ON_DEV_NULL ? false : 'needs an fsync that fails' },
  async (t) => {
    const root = await tempDir(t)
    const fs = recordingFs([], (path) => (path.endsWith('.part') ? '/dev/null' : undefined))
    const store = await BlobStore.open(root, { fs })
    const empty = digestOf('')
    const writer = await store.createWriter()
    const error = await writer.commit(empty).catch((e: unknown) => e)
    t.type(error, StorageWriteError)
    t.match(error, { cause: { syscall: 'fsync' } })
    await t.rejects(store.put(empty, Readable.from([])), StorageWriteError)
    t.same(await filesUnder(root), [])
  },
)
