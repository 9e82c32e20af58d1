import { Readable } from 'node:stream'
import t from 'tap'
import { BlobStore, READ_HIGH_WATER_MARK } from '../../src/storage/blob-store.ts'
import { digestOf } from '../../src/storage/digest.ts'
import { tempDir } from '../helpers/config.ts'
import { randomBlob, readAll } from '../helpers/streams.ts'

t.test('range reads return exactly the requested bytes', async (t) => {
  const store = await BlobStore.open(await tempDir(t))
  const size = 3 * READ_HIGH_WATER_MARK + 17
  const blob = randomBlob(size)
  await store.put(blob.digest, Readable.from([blob.data]))
  const cases: [{ start?: number; end?: number }, number, number][] = [
    [{ start: 0, end: 0 }, 0, 1],
    [{ start: 1000, end: 1999 }, 1000, 2000],
    [{ start: 5 }, 5, size],
    [{ end: 99 }, 0, 100],
    [{ start: size - 1, end: size - 1 }, size - 1, size],
    // Across read-chunk boundaries.
    [
      { start: READ_HIGH_WATER_MARK - 3, end: 2 * READ_HIGH_WATER_MARK + 2 },
      READ_HIGH_WATER_MARK - 3,
      2 * READ_HIGH_WATER_MARK + 3,
    ],
    // An end past the blob stops at its last byte.
    [{ start: 10, end: size + 1000 }, 10, size],
  ]
  for (const [range, from, to] of cases) {
    for (const verify of [false, true]) {
      const read = await readAll(await store.createReadStream(blob.digest, { ...range, verify }))
      t.ok(
        read.equals(blob.data.subarray(from, to)),
        `${JSON.stringify(range)}${verify ? ' (verify asked)' : ''} gives bytes ${from}-${to - 1}`,
      )
    }
  }
})

t.test('a range that selects no bytes reads nothing', async (t) => {
  const store = await BlobStore.open(await tempDir(t))
  const blob = randomBlob(100)
  await store.put(blob.digest, Readable.from([blob.data]))
  t.equal((await readAll(await store.createReadStream(blob.digest, { start: 100 }))).length, 0)
  t.equal(
    (await readAll(await store.createReadStream(blob.digest, { start: 50, end: 49 }))).length,
    0,
  )
  const empty = digestOf('')
  await store.put(empty, Readable.from([]))
  // What a caller computes as `end: size - 1` for an empty blob.
  const read = await store.createReadStream(empty, { start: 0, end: -1, verify: true })
  t.equal((await readAll(read)).length, 0)
})

t.test(
  'readHead gives the first bytes, the whole of a shorter blob, nothing for a missing one',
  async (t) => {
    const store = await BlobStore.open(await tempDir(t))
    const blob = randomBlob(2 * READ_HIGH_WATER_MARK + 5)
    await store.put(blob.digest, Readable.from([blob.data]))
    t.ok((await store.readHead(blob.digest, 100))?.equals(blob.data.subarray(0, 100)))
    t.ok((await store.readHead(blob.digest, blob.data.length * 2))?.equals(blob.data))
    t.equal(await store.readHead(randomBlob(10).digest, 100), undefined)
    await t.rejects(store.readHead('sha256:nothex', 100), 'an invalid digest is an error')
  },
)
