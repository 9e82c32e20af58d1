import { execFile } from 'node:child_process'
import { mkdir, readdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import t, { type Test } from 'tap'
import { fakeUpstream, serveBytes } from '../helpers/fake-upstream.ts'
import { metricValue, poolConfig, testPool } from '../helpers/pool.ts'
import { testCache } from '../helpers/read-through.ts'
import { tempDir } from '../helpers/config.ts'
import { drain, randomBlob } from '../helpers/streams.ts'

const run = promisify(execFile)
const MiB = 1024 * 1024

/** A real, small filesystem (tmpfs) as the store root, so writes really fail with ENOSPC. */
async function smallDisk(t: Test, bytes: number): Promise<string> {
  const dir = await tempDir(t)
  const mnt = join(dir, 'disk')
  await mkdir(mnt)
  await run('mount', ['-t', 'tmpfs', '-o', `size=${bytes}`, 'tmpfs', mnt])
  t.teardown(() => run('umount', ['-l', mnt]).then(() => undefined))
  return mnt
}

const canMount = process.getuid?.() === 0

t.test(
  'a full disk: the client still gets the whole verified blob, nothing is cached',
  { skip: !canMount && 'needs root to mount a tmpfs' },
  async (t) => {
    const disk = await smallDisk(t, 2 * MiB)
    const blob = randomBlob(6 * MiB)
    const up = await fakeUpstream(t, serveBytes(blob.data))
    const { pool, metrics } = testPool(t, poolConfig([up.url]))
    const { cache, blobs, logs } = await testCache(t, { metrics, root: disk })
    // Fill the disk so the first write fails.
    await writeFile(join(disk, 'filler'), Buffer.alloc(2 * MiB)).catch(() => undefined)
    const got = await drain((await cache.serve(blob.digest, { pool, path: 'blob' })).body)
    t.equal(got.error, undefined)
    t.equal(got.digest, blob.digest)
    t.equal(await metricValue(metrics.storageWriteErrors), 1)
    t.notOk(await blobs.has(blob.digest))
    t.same(await readdir(join(disk, 'tmp')), [], 'no temp file left behind')
    t.match(logs.raw.join('\n'), /streaming through without caching/)
  },
)

t.test(
  'the disk filling up mid-transfer never yields a wrong body, and the next request streams through',
  { skip: !canMount && 'needs root to mount a tmpfs' },
  async (t) => {
    const disk = await smallDisk(t, 3 * MiB)
    const blob = randomBlob(8 * MiB)
    const up = await fakeUpstream(t, serveBytes(blob.data))
    const { pool, metrics } = testPool(t, poolConfig([up.url]))
    const { cache } = await testCache(t, { metrics, root: disk })
    const first = await drain((await cache.serve(blob.digest, { pool, path: 'blob' })).body)
    if (first.error)
      t.ok(
        first.bytes < blob.data.length,
        'a client holding bytes of the failed attempt is cut, not misled',
      )
    else t.equal(first.digest, blob.digest)
    const second = await drain((await cache.serve(blob.digest, { pool, path: 'blob' })).body)
    t.equal(second.digest, blob.digest)
    t.ok((await metricValue(metrics.storageWriteErrors)) >= 1)
  },
)
