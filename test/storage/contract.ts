/**
 * The blob storage contract (src/storage/blob-storage.ts), one suite run
 * against every implementation: fs-contract.test.ts and s3-contract.test.ts.
 * Each subject also says, behind the store's back, what its backend holds
 * (`committed`) and can rot a stored blob (`corrupt`).
 */
import { Readable } from 'node:stream'
import type { Test } from 'tap'
import type { BlobStorage } from '../../src/storage/blob-storage.ts'
import { digestOf } from '../../src/storage/digest.ts'
import {
  BlobNotFoundError,
  BlobTooLargeError,
  DigestMismatchError,
} from '../../src/storage/errors.ts'
import { drain, randomBlob, readAll } from '../helpers/streams.ts'

const MiB = 1024 * 1024

export interface ContractSubject {
  readonly store: BlobStorage
  /** The digests the backend holds under blobs/sha256/, read without the store, in order. */
  readonly committed: () => Promise<string[]>
  /** Replaces the stored content of `digest` with `data` without the store (bit rot, an operator). */
  readonly corrupt: (digest: string, data: Buffer) => Promise<void>
}

/** A temp file left in the spool would be counted as stale an hour from now. */
async function leftoverTemps(store: BlobStorage): Promise<number> {
  return store.removeStaleTemps(Date.now() + 3_600_000, { dryRun: true })
}

export function storageContract(t: Test, open: (t: Test) => Promise<ContractSubject>): void {
  t.test('a put blob reads back identical, is listed and has its size', async (t) => {
    const { store, committed } = await open(t)
    const blob = randomBlob(300_000)
    t.same(await store.put(blob.digest, Readable.from([blob.data])), { size: 300_000 })
    t.ok((await readAll(await store.createReadStream(blob.digest))).equals(blob.data))
    t.equal((await store.stat(blob.digest))?.size, 300_000)
    t.equal(await store.has(blob.digest), true)
    t.same(await committed(), [blob.digest])
    t.equal(await leftoverTemps(store), 0, 'nothing left in the spool')
  })

  t.test('a blob of several upload parts reads back identical, verified', async (t) => {
    const { store } = await open(t)
    const blob = randomBlob(11 * MiB + 7)
    await store.put(blob.digest, Readable.from([blob.data]))
    const read = await drain(await store.createReadStream(blob.digest, { verify: true }))
    t.same(read, { bytes: blob.data.length, digest: blob.digest, error: undefined })
  })

  t.test('a written blob becomes visible only when its commit verified it', async (t) => {
    const { store, committed } = await open(t)
    const blob = randomBlob(200_000)
    const writer = await store.createWriter()
    await new Promise<void>((resolve, reject) => {
      writer.write(blob.data, (error) => (error ? reject(error) : resolve()))
    })
    t.equal(writer.bytesWritten, 200_000)
    t.equal(await store.has(blob.digest), false, 'not visible while written')
    t.same(await committed(), [])
    t.same(await writer.commit(blob.digest), { size: 200_000 })
    t.equal(await store.has(blob.digest), true)
    t.same(await committed(), [blob.digest])
  })

  t.test('content that does not match its digest leaves nothing behind', async (t) => {
    const { store, committed } = await open(t)
    const blob = randomBlob(100_000)
    const wrong = digestOf('something else')
    await t.rejects(store.put(wrong, Readable.from([blob.data])), DigestMismatchError)
    t.equal(await store.has(wrong), false)
    t.equal(await store.has(blob.digest), false)
    t.same(await committed(), [])
    t.equal(await leftoverTemps(store), 0)
  })

  t.test('an aborted writer leaves nothing behind', async (t) => {
    const { store, committed } = await open(t)
    const writer = await store.createWriter()
    writer.write(randomBlob(50_000).data)
    await writer.abort()
    t.same(await committed(), [])
    t.equal(await leftoverTemps(store), 0)
  })

  t.test('a source that fails mid-way leaves nothing behind', async (t) => {
    const { store, committed } = await open(t)
    const blob = randomBlob(100_000)
    async function* broken() {
      yield blob.data.subarray(0, 50_000)
      throw new Error('connection reset')
    }
    await t.rejects(store.put(blob.digest, broken()), /connection reset/)
    t.same(await committed(), [])
    t.equal(await leftoverTemps(store), 0)
  })

  t.test('ranges read the bytes asked for', async (t) => {
    const { store } = await open(t)
    const blob = randomBlob(1000)
    await store.put(blob.digest, Readable.from([blob.data]))
    const range = async (start?: number, end?: number) =>
      readAll(
        await store.createReadStream(blob.digest, {
          ...(start !== undefined ? { start } : {}),
          ...(end !== undefined ? { end } : {}),
        }),
      )
    t.ok((await range(10, 19)).equals(blob.data.subarray(10, 20)), 'a middle range')
    t.ok((await range(990)).equals(blob.data.subarray(990)), 'an open-ended range')
    t.ok((await range(0, 5000)).equals(blob.data), 'an end past the size stops at the end')
    t.equal((await range(5, 4)).length, 0, 'an end below the start reads nothing')
    t.equal((await range(1000)).length, 0, 'a start at the end reads nothing')
  })

  t.test('an empty blob is stored and read back empty', async (t) => {
    const { store } = await open(t)
    const empty = digestOf('')
    t.same(await store.put(empty, Readable.from([])), { size: 0 })
    t.equal((await store.stat(empty))?.size, 0)
    const read = await drain(await store.createReadStream(empty, { verify: true }))
    t.same(read, { bytes: 0, digest: empty, error: undefined })
    t.equal((await readAll(await store.createReadStream(empty, { start: 0, end: -1 }))).length, 0)
  })

  t.test('a verified read of a rotten blob fails instead of ending', async (t) => {
    const { store, corrupt } = await open(t)
    const blob = randomBlob(2 * MiB)
    await store.put(blob.digest, Readable.from([blob.data]))
    const rotten = Buffer.from(blob.data)
    rotten[12345] = (rotten[12345] ?? 0) ^ 1
    await corrupt(blob.digest, rotten)
    const whole = await drain(await store.createReadStream(blob.digest, { verify: true }))
    t.type(whole.error, DigestMismatchError, 'the whole read errors')
    t.ok(whole.bytes < blob.data.length, 'the last chunk is never delivered')
    const ranged = await drain(
      await store.createReadStream(blob.digest, { verify: true, start: 0, end: blob.data.length }),
    )
    t.type(ranged.error, DigestMismatchError, 'a range covering the whole blob is verified too')
    const part = await readAll(
      await store.createReadStream(blob.digest, { start: 12340, end: 12349 }),
    )
    t.ok(part.equals(rotten.subarray(12340, 12350)), 'a partial range is served as stored')
  })

  t.test('open gives the size and the bytes, whole or ranged; undefined when absent', async (t) => {
    const { store } = await open(t)
    for (const size of [1000, 2 * MiB]) {
      const blob = randomBlob(size)
      await store.put(blob.digest, Readable.from([blob.data]))
      const whole = await store.open(blob.digest, { verify: true })
      t.equal(whole?.size, size, `${size} bytes: the size`)
      t.ok(whole && (await readAll(whole.body)).equals(blob.data), `${size} bytes: every byte`)
      const ranged = await store.open(blob.digest, { start: 10, end: 19 })
      t.equal(ranged?.size, size, `${size} bytes, a range: the size of the blob`)
      t.ok(ranged && (await readAll(ranged.body)).equals(blob.data.subarray(10, 20)))
    }
    t.equal(await store.open(digestOf('absent')), undefined)
    t.equal(await store.open(digestOf('absent'), { verify: true, start: 5 }), undefined)
  })

  t.test('an open that verifies a rotten blob never delivers all of it', async (t) => {
    const { store, corrupt } = await open(t)
    for (const size of [1000, 2 * MiB]) {
      const blob = randomBlob(size)
      await store.put(blob.digest, Readable.from([blob.data]))
      const rotten = Buffer.from(blob.data)
      rotten[500] = (rotten[500] ?? 0) ^ 1
      await corrupt(blob.digest, rotten)
      // Refused at the open (a body read whole) or cut before its last byte (a stream).
      const read = await store.open(blob.digest, { verify: true }).then(
        (opened) => drain(opened?.body ?? Buffer.alloc(0)),
        (error: unknown) => ({ bytes: 0, digest: '', error: error as Error }),
      )
      t.type(read.error, DigestMismatchError, `${size} bytes: a mismatch`)
      t.ok(read.bytes < size, `${size} bytes: never the whole body`)
      const part = await store.open(blob.digest, { start: 500, end: 509 })
      t.ok(
        part && (await readAll(part.body)).equals(rotten.subarray(500, 510)),
        'a range unverified',
      )
    }
  })

  t.test('readSmall verifies, and refuses what is too large or absent', async (t) => {
    const { store, corrupt } = await open(t)
    const doc = Buffer.from('{"schemaVersion":2}')
    const digest = digestOf(doc)
    await store.put(digest, Readable.from([doc]))
    t.ok((await store.readSmall(digest, 1024)).equals(doc))
    await t.rejects(store.readSmall(digest, 5), BlobTooLargeError)
    await t.rejects(store.readSmall(digestOf('absent'), 1024), BlobNotFoundError)
    await corrupt(digest, Buffer.from('{"schemaVersion":3}'))
    await t.rejects(store.readSmall(digest, 1024), DigestMismatchError)
  })

  t.test('readHead gives the first bytes, undefined when absent', async (t) => {
    const { store } = await open(t)
    const blob = randomBlob(4096)
    await store.put(blob.digest, Readable.from([blob.data]))
    t.ok((await store.readHead(blob.digest, 100))?.equals(blob.data.subarray(0, 100)))
    t.ok((await store.readHead(blob.digest, 10_000))?.equals(blob.data))
    t.equal(await store.readHead(digestOf('absent'), 100), undefined)
    const empty = digestOf('')
    await store.put(empty, Readable.from([]))
    t.same(await store.readHead(empty, 100), Buffer.alloc(0), 'an empty blob has an empty head')
  })

  t.test('a read of an absent blob fails before streaming', async (t) => {
    const { store } = await open(t)
    await t.rejects(store.createReadStream(digestOf('absent')), BlobNotFoundError)
    await t.rejects(
      store.createReadStream(digestOf('absent'), { start: 5, end: 4 }),
      BlobNotFoundError,
    )
    t.equal(await store.stat(digestOf('absent')), undefined)
  })

  t.test('check tells ok, corrupt and missing blobs apart, and paces every byte', async (t) => {
    const { store, corrupt } = await open(t)
    const good = randomBlob(3 * MiB)
    const bad = randomBlob(1000)
    await store.put(good.digest, Readable.from([good.data]))
    await store.put(bad.digest, Readable.from([bad.data]))
    await corrupt(bad.digest, Buffer.alloc(1000))
    let paced = 0
    const pace = (bytes: number) => {
      paced += bytes
      return Promise.resolve()
    }
    t.same(await store.check(good.digest, pace), { result: 'ok', bytes: good.data.length })
    t.equal(paced, good.data.length)
    t.equal((await store.check(bad.digest, pace)).result, 'corrupt')
    t.same(await store.check(digestOf('absent'), pace), { result: 'missing', bytes: 0 })
  })

  t.test('delete removes a blob once; list and totalSize describe what is stored', async (t) => {
    const { store, committed } = await open(t)
    const blobs = [randomBlob(10), randomBlob(2000), randomBlob(0)]
    for (const blob of blobs) await store.put(blob.digest, Readable.from([blob.data]))
    const listed = []
    for await (const entry of store.list()) listed.push(entry)
    t.same(
      listed.map((e) => [e.digest, e.size]),
      blobs
        .map((b) => [b.digest, b.data.length])
        .sort((a, b) => String(a[0]).localeCompare(String(b[0]))),
      'every blob, in digest order',
    )
    t.ok(listed.every((e) => e.mtimeMs > Date.now() - 600_000 && e.mtimeMs <= Date.now() + 5_000))
    t.equal(await store.totalSize(), 2010)
    const [first] = blobs
    if (!first) throw new Error('no blob')
    t.equal(await store.delete(first.digest), true)
    t.equal(await store.delete(first.digest), false, 'a second delete finds nothing')
    t.equal(await store.has(first.digest), false)
    t.equal(await store.totalSize(), 2000)
    t.equal((await committed()).includes(first.digest), false)
  })

  t.test('staged blobs become visible only when the staging commits', async (t) => {
    const { store, committed } = await open(t)
    const a = randomBlob(1000)
    const b = randomBlob(2000)
    const staging = await store.createStaging()
    await staging.write(a.digest, Readable.from([a.data]))
    await staging.write(b.digest, Readable.from([b.data]))
    await t.rejects(staging.write(a.digest, Readable.from([b.data])), DigestMismatchError)
    t.same(await committed(), [], 'nothing visible while staged')
    const told: string[] = []
    await staging.commit((digest) => {
      told.push(digest)
      return Promise.resolve()
    })
    await staging.discard()
    t.same(told.sort(), [a.digest, b.digest].sort())
    t.same(await committed(), [a.digest, b.digest].sort())
    t.equal(await leftoverTemps(store), 0)
  })

  t.test('discarded staging leaves nothing behind', async (t) => {
    const { store, committed } = await open(t)
    const a = randomBlob(1000)
    const staging = await store.createStaging()
    await staging.write(a.digest, Readable.from([a.data]))
    await staging.discard()
    t.same(await committed(), [])
    t.equal(await leftoverTemps(store), 0)
  })

  t.test('the store reports itself writable', async (t) => {
    const { store } = await open(t)
    await t.resolves(store.checkWritable())
  })
}
