import { access, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { setTimeout as sleep } from 'node:timers/promises'
import t, { type Test } from 'tap'
import { BlobStore } from '../../src/storage/blob-store.ts'
import { parseDigest } from '../../src/storage/digest.ts'
import { DigestMismatchError } from '../../src/storage/errors.ts'
import { FileHasher, type FileHash } from '../../src/storage/file-hasher.ts'
import { VerifiedFiles } from '../../src/storage/verified-files.ts'
import { tempDir } from '../helpers/config.ts'
import { drain, randomBlob } from '../helpers/streams.ts'
import { blobFile, flipByte } from './fixtures/disk.ts'

const MiB = 1024 * 1024
/** How long a test waits for a record written after a read. */
const RECORD_WAIT_MS = 5_000

/** The real worker-thread hasher, counting the files it hashes. */
class CountingHasher extends FileHasher {
  hashed = 0
  override hash(path: string): Promise<FileHash> {
    this.hashed++
    return super.hash(path)
  }
}

/** Where a verification of `digest` is kept (the documented layout, spelled out independently). */
function recordFile(root: string, digest: string): string {
  const hex = digest.slice('sha256:'.length)
  return join(root, 'verified', hex.slice(0, 2), hex)
}

/** A record is written once a read ends, without the reader waiting for it. */
async function recorded(root: string, digest: string, content?: string): Promise<boolean> {
  const deadline = Date.now() + RECORD_WAIT_MS
  while (Date.now() < deadline) {
    const found = await readFile(recordFile(root, digest), 'utf8').catch(() => undefined)
    if (found !== undefined && (content === undefined || found === content)) return true
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  return false
}

/** A process's store on `root`, with its own hasher counting what it hashes. */
async function openProcess(t: Test, root: string, trustVerified: boolean) {
  const hasher = new CountingHasher(1)
  t.teardown(() => hasher.close())
  const store = await BlobStore.open(root, { hasher, trustVerified })
  return { store, hasher }
}

/**
 * A blob stored by a process without `changed` (as a cache upgraded or switched
 * to it has them), then a process with `trustVerified` on the same store.
 */
async function openStore(t: Test, trustVerified: boolean) {
  const root = await tempDir(t)
  const blob = randomBlob(3 * MiB + 7)
  const before = await BlobStore.open(root)
  await before.put(blob.digest, Readable.from([blob.data]))
  const { store, hasher } = await openProcess(t, root, trustVerified)
  const read = async () => drain(await store.createReadStream(blob.digest, { verify: true }))
  return { root, store, hasher, blob, read }
}

t.test('changed: a file verified once is served again without hashing it', async (t) => {
  const { hasher, blob, read } = await openStore(t, true)
  const good = { bytes: blob.data.length, digest: blob.digest, error: undefined }
  t.same(await read(), good)
  t.equal(hasher.hashed, 1, 'the first read hashes the file')
  t.same(await read(), good)
  t.same(await read(), good)
  t.equal(hasher.hashed, 1, 'later reads of the unchanged file do not')
})

t.test('changed: a file written to after its verification is hashed again', async (t) => {
  const { root, hasher, blob, read } = await openStore(t, true)
  await read()
  await flipByte(blobFile(root, blob.digest), 2 * MiB)
  const rotten = await read()
  t.equal(hasher.hashed, 2, 'the changed file is hashed again')
  t.type(rotten.error, DigestMismatchError, 'and its corruption caught')
  t.ok(rotten.bytes < blob.data.length, 'before the last byte went out')
})

t.test('changed: a read that stops early verifies nothing', async (t) => {
  const { store, hasher, blob, read } = await openStore(t, true)
  const stream = await store.createReadStream(blob.digest, { verify: true })
  await new Promise<void>((resolve) => stream.once('data', () => resolve()))
  stream.destroy()
  await read()
  t.equal(hasher.hashed, 2, 'the whole read after it hashes')
  await read()
  t.equal(hasher.hashed, 2)
})

t.test('changed: a scrub check that found the file good counts as a verification', async (t) => {
  const { store, hasher, blob, read } = await openStore(t, true)
  t.same(await store.check(blob.digest, async () => undefined), {
    result: 'ok',
    bytes: blob.data.length,
  })
  t.equal((await read()).error, undefined)
  t.equal(hasher.hashed, 0, 'the read after the scrub does not hash')
})

t.test('changed: a blob a fill stored is served without hashing it again', async (t) => {
  const root = await tempDir(t)
  const { store, hasher } = await openProcess(t, root, true)
  const blob = randomBlob(3 * MiB + 7)
  await store.put(blob.digest, Readable.from([blob.data]))
  const read = async () => drain(await store.createReadStream(blob.digest, { verify: true }))
  t.same(await read(), { bytes: blob.data.length, digest: blob.digest, error: undefined })
  t.equal(hasher.hashed, 0, 'its bytes were hashed on their way in')
  await flipByte(blobFile(root, blob.digest), MiB)
  t.type((await read()).error, DigestMismatchError, 'a change after the fill is still caught')
  t.equal(hasher.hashed, 1)
})

t.test(
  'changed: a small blob read whole is recorded as verified; a change is still caught',
  async (t) => {
    const root = await tempDir(t)
    const blob = randomBlob(1000)
    await (await BlobStore.open(root)).put(blob.digest, Readable.from([blob.data]))
    const { store } = await openProcess(t, root, true)
    const hex = blob.digest.slice('sha256:'.length)
    const recorded = () => readFile(join(root, 'verified', hex.slice(0, 2), hex), 'utf8')
    await t.rejects(recorded(), { code: 'ENOENT' }, 'stored by a process that kept no records')
    const opened = await store.open(blob.digest, { verify: true })
    t.ok(Buffer.isBuffer(opened?.body) && opened.body.equals(blob.data), 'read whole')
    let record: string | undefined
    // The record is written behind the read: a bounded wait for it
    // (a read in the middle of its write may find it empty).
    for (let i = 0; i < 100 && !record; i++) {
      record = await recorded().catch(() => undefined)
      if (!record) await sleep(10)
    }
    t.ok(record, 'its verification is recorded')
    await flipByte(blobFile(root, blob.digest), 5)
    await t.rejects(store.open(blob.digest, { verify: true }), DigestMismatchError)
  },
)

t.test('changed: a restarted process trusts what the one before verified', async (t) => {
  const { root, blob, read } = await openStore(t, true)
  await read()
  t.ok(await recorded(root, blob.digest), 'the verification is written under verified/')
  const next = await openProcess(t, root, true)
  const served = await drain(await next.store.createReadStream(blob.digest, { verify: true }))
  t.same(served, { bytes: blob.data.length, digest: blob.digest, error: undefined })
  t.equal(next.hasher.hashed, 0, 'the new process does not hash the unchanged file')
})

t.test('changed: a file that changed while no process ran is hashed again', async (t) => {
  const { root, blob, read } = await openStore(t, true)
  await read()
  t.ok(await recorded(root, blob.digest))
  await flipByte(blobFile(root, blob.digest), 2 * MiB)
  const next = await openProcess(t, root, true)
  const served = await drain(await next.store.createReadStream(blob.digest, { verify: true }))
  t.equal(next.hasher.hashed, 1, 'the record no longer matches the file')
  t.type(served.error, DigestMismatchError)
})

t.test('changed: a record that is not the identity of the file vouches for nothing', async (t) => {
  const { root, blob, read } = await openStore(t, true)
  await read()
  t.ok(await recorded(root, blob.digest))
  const good = await readFile(recordFile(root, blob.digest), 'utf8')
  for (const record of ['', 'garbage', '1:2:3:4:5', 'x'.repeat(4096)]) {
    await writeFile(recordFile(root, blob.digest), record)
    const next = await openProcess(t, root, true)
    await drain(await next.store.createReadStream(blob.digest, { verify: true }))
    t.equal(next.hasher.hashed, 1, `record ${JSON.stringify(record.slice(0, 12))} is not trusted`)
    // The hash wrote the good record again; wait for it before writing the next bad one.
    t.ok(await recorded(root, blob.digest, good))
  }
})

t.test('changed: records that cannot be written cost a hash, never a read', async (t) => {
  const root = await tempDir(t)
  // verified/ is a file: no record can be created under it.
  await writeFile(join(root, 'verified'), 'in the way')
  const { store, hasher } = await openProcess(t, root, true)
  const blob = randomBlob(2 * MiB)
  await store.put(blob.digest, Readable.from([blob.data]))
  const good = { bytes: blob.data.length, digest: blob.digest, error: undefined }
  t.same(await drain(await store.createReadStream(blob.digest, { verify: true })), good)
  t.equal(hasher.hashed, 0, 'this process still remembers the fill')
  const next = await openProcess(t, root, true)
  t.same(await drain(await next.store.createReadStream(blob.digest, { verify: true })), good)
  t.equal(next.hasher.hashed, 1, 'the next one hashes once')
})

t.test('changed: deleting a blob removes its record', async (t) => {
  const { root, store, blob, read } = await openStore(t, true)
  await read()
  t.ok(await recorded(root, blob.digest))
  t.equal(await store.delete(blob.digest), true)
  await t.rejects(access(recordFile(root, blob.digest)), { code: 'ENOENT' })
})

t.test('changed: a scrub that finds the file corrupt removes its record', async (t) => {
  const { root, store, blob, read } = await openStore(t, true)
  await read()
  t.ok(await recorded(root, blob.digest))
  await flipByte(blobFile(root, blob.digest), 10)
  t.equal((await store.check(blob.digest, async () => undefined)).result, 'corrupt')
  await t.rejects(access(recordFile(root, blob.digest)), { code: 'ENOENT' })
})

t.test('the default hashes every read and keeps no records', async (t) => {
  const { root, hasher, read } = await openStore(t, false)
  await read()
  await read()
  t.equal(hasher.hashed, 2)
  await t.rejects(access(join(root, 'verified')), { code: 'ENOENT' })
})

t.test('VerifiedFiles forgets the least recently read beyond its bound', async (t) => {
  const files = new VerifiedFiles(undefined, 2)
  const [a, b, c] = ['a', 'b', 'c'].map((x) => parseDigest(`sha256:${x.repeat(64)}`))
  if (a === undefined || b === undefined || c === undefined) throw new Error('three digests')
  await files.record(a, '1')
  await files.record(b, '1')
  t.ok(await files.matches(a, '1'), 'a read now')
  await files.record(c, '1')
  t.equal(files.size, 2)
  t.ok(await files.matches(a, '1'))
  t.notOk(await files.matches(b, '1'), 'b went first')
  t.notOk(await files.matches(c, '2'), 'another identity does not match')
  await files.forget(c)
  t.notOk(await files.matches(c, '1'))
})

t.test('VerifiedFiles looks up in its directory what memory no longer holds', async (t) => {
  const dir = await tempDir(t)
  const files = new VerifiedFiles(dir, 1)
  const [a, b] = ['a', 'b'].map((x) => parseDigest(`sha256:${x.repeat(64)}`))
  if (a === undefined || b === undefined) throw new Error('two digests')
  await files.record(a, '1:2')
  await files.record(b, '3:4')
  t.equal(files.size, 1, 'memory holds one')
  t.ok(await files.matches(a, '1:2'), 'the other comes from the directory')
  t.notOk(await files.matches(a, '1:3'))
  await files.forget(a)
  t.notOk(await files.matches(a, '1:2'), 'forgotten on disk too')
})
