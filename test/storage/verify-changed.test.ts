import { Readable } from 'node:stream'
import t, { type Test } from 'tap'
import { BlobStore } from '../../src/storage/blob-store.ts'
import { DigestMismatchError } from '../../src/storage/errors.ts'
import { FileHasher, type FileHash } from '../../src/storage/file-hasher.ts'
import { VerifiedFiles } from '../../src/storage/verified-files.ts'
import { tempDir } from '../helpers/config.ts'
import { drain, randomBlob } from '../helpers/streams.ts'
import { blobFile, flipByte } from './fixtures/disk.ts'

const MiB = 1024 * 1024

/** The real worker-thread hasher, counting the files it hashes. */
class CountingHasher extends FileHasher {
  hashed = 0
  override hash(path: string): Promise<FileHash> {
    this.hashed++
    return super.hash(path)
  }
}

async function openStore(t: Test, trustVerified: boolean) {
  const root = await tempDir(t)
  const hasher = new CountingHasher(1)
  t.teardown(() => hasher.close())
  const store = await BlobStore.open(root, { hasher, trustVerified })
  const blob = randomBlob(3 * MiB + 7)
  await store.put(blob.digest, Readable.from([blob.data]))
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

t.test('the default hashes every read', async (t) => {
  const { hasher, read } = await openStore(t, false)
  await read()
  await read()
  t.equal(hasher.hashed, 2)
})

t.test('VerifiedFiles forgets the least recently read beyond its bound', async (t) => {
  const files = new VerifiedFiles(2)
  files.record('a', '1')
  files.record('b', '1')
  t.ok(files.matches('a', '1'), 'a read now')
  files.record('c', '1')
  t.equal(files.size, 2)
  t.ok(files.matches('a', '1'))
  t.notOk(files.matches('b', '1'), 'b went first')
  t.notOk(files.matches('c', '2'), 'another identity does not match')
  files.forget('c')
  t.notOk(files.matches('c', '1'))
})
