/**
 * Staging: blobs written and checked now, committed together later or thrown
 * away together (an import). Nothing staged is visible in the store before
 * the commit; a mismatch keeps nothing; a discard leaves tmp/ empty.
 */
import { readdir, utimes } from 'node:fs/promises'
import { setTimeout as sleep } from 'node:timers/promises'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import t from 'tap'
import { BlobStore, STALE_TEMP_MS } from '../../src/storage/blob-store.ts'
import { STAGING_TOUCH_MS } from '../../src/storage/blob-staging.ts'
import { digestOf } from '../../src/storage/digest.ts'
import { DigestMismatchError } from '../../src/storage/errors.ts'
import { tempDir } from '../helpers/config.ts'

const a = Buffer.alloc(70_000, 1)
const b = Buffer.from('second blob')

t.test('staged blobs appear in the store only on commit, each reported', async (t) => {
  const root = await tempDir(t)
  const store = await BlobStore.open(root)
  const staging = await store.createStaging()
  t.same(await staging.write(digestOf(a), Readable.from([a])), { size: a.length })
  t.same(await staging.write(digestOf(b), Readable.from([b])), { size: b.length })
  t.notOk(await store.has(digestOf(a)), 'not in the store while staged')
  const committed: [string, number][] = []
  await staging.commit((digest, size) => {
    committed.push([digest, size])
    return Promise.resolve()
  })
  t.same(committed, [
    [digestOf(a), a.length],
    [digestOf(b), b.length],
  ])
  t.same(await store.readSmall(digestOf(b), 100), b, 'committed, whole')
  await staging.discard()
  t.same(await readdir(join(root, 'tmp')), [], 'the staging directory is gone')
})

t.test('a mismatch keeps nothing; a discard throws away what was staged', async (t) => {
  const root = await tempDir(t)
  const store = await BlobStore.open(root)
  const staging = await store.createStaging()
  await staging.write(digestOf(a), Readable.from([a]))
  await t.rejects(staging.write(digestOf(b), Readable.from([a])), DigestMismatchError)
  t.equal((await readdir(staging.dir)).length, 1, 'only the blob that matched is staged')
  await staging.discard()
  t.same(await readdir(join(root, 'tmp')), [])
  t.notOk(await store.has(digestOf(a)), 'never committed')
  await t.rejects(
    staging.write(digestOf(b), Readable.from([b])),
    /closed/,
    'no writes after a discard',
  )
})

t.test(
  'a live staging directory is kept fresh for the sweep of abandoned temp files',
  async (t) => {
    const root = await tempDir(t)
    const store = await BlobStore.open(root)
    const staging = await store.createStaging(20)
    const old = new Date(Date.now() - 3_600_000)
    await utimes(staging.dir, old, old)
    await sleep(200)
    t.equal(
      await store.removeStaleTemps(Date.now(), { dryRun: true }),
      0,
      'touched since: not swept',
    )
    await staging.discard()
    t.ok(STAGING_TOUCH_MS < STALE_TEMP_MS / 5, 'by default touched well within the sweep’s limit')
  },
)
