import { createHash } from 'node:crypto'
import { readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { BlobUnknownUpstreamError, FillFailedError } from '../../src/cache/errors.ts'
import { MAX_RESUMES_WITHOUT_PROGRESS } from '../../src/cache/fill.ts'
import { fakeUpstream, serveBytes } from '../helpers/fake-upstream.ts'
import { metricValue, poolConfig, testPool } from '../helpers/pool.ts'
import { testCache } from '../helpers/read-through.ts'
import { drain, randomBlob, readAll } from '../helpers/streams.ts'
import { bodyStream } from '../../src/cache/served-body.ts'

const MiB = 1024 * 1024

async function tempFiles(root: string): Promise<string[]> {
  return readdir(join(root, 'tmp'))
}

t.test('a cold blob is streamed to the client and committed', async (t) => {
  const blob = randomBlob(3 * MiB + 17)
  const up = await fakeUpstream(t, serveBytes(blob.data))
  const { pool } = testPool(t, poolConfig([up.url]))
  const { cache, blobs, metadata } = await testCache(t)
  const served = await cache.serve(blob.digest, { pool, path: 'blob' })
  t.equal(served.cache, 'miss')
  t.equal(served.size, blob.data.length)
  t.equal(served.upstream, up.url)
  const got = await drain(served.body)
  t.equal(got.digest, blob.digest)
  await cache.settled()
  t.ok(await blobs.has(blob.digest))
  t.equal((await metadata.getBlob(blob.digest))?.size, blob.data.length)
  const hit = await cache.serve(blob.digest, { pool, path: 'blob' })
  t.equal(hit.cache, 'hit')
  t.equal((await drain(hit.body)).digest, blob.digest)
  t.equal(up.count(), 1)
})

t.test(
  'a client arriving while a verified fill is being stored reads the stored blob',
  async (t) => {
    const blob = randomBlob(MiB)
    const up = await fakeUpstream(t, serveBytes(blob.data))
    const { pool } = testPool(t, poolConfig([up.url]))
    const { cache, blobs } = await testCache(t)
    // A slow disk: fsync and rename take a while after the bytes were verified.
    const createWriter = blobs.createWriter.bind(blobs)
    blobs.createWriter = async (...args) => {
      const writer = await createWriter(...args)
      const commit = writer.commit.bind(writer)
      writer.commit = async (expected) => {
        await sleep(300)
        return commit(expected)
      }
      return writer
    }
    const first = await cache.serve(blob.digest, { pool, path: 'blob' })
    t.equal((await drain(first.body)).digest, blob.digest, 'the first client has every byte')
    t.notOk(await blobs.has(blob.digest), 'the blob is not renamed into place yet')
    const second = await cache.serve(blob.digest, { pool, path: 'blob' })
    t.equal(second.cache, 'hit', 'nothing more comes from the upstream: a hit')
    t.ok(await blobs.has(blob.digest), 'served from the stored blob')
    t.equal((await drain(second.body)).digest, blob.digest)
    t.equal(up.count(), 1)
  },
)

t.test(
  'a cut after N bytes resumes on the next mirror and the client gets the full body in one response',
  async (t) => {
    const blob = randomBlob(4 * MiB)
    const cutAt = MiB + 123
    const a = await fakeUpstream(t, serveBytes(blob.data))
    a.cut('/*', cutAt)
    const b = await fakeUpstream(t, serveBytes(blob.data))
    const { pool, metrics } = testPool(t, poolConfig([a.url, b.url]))
    const { cache, blobs, root } = await testCache(t, { metrics })
    const served = await cache.serve(blob.digest, { pool, path: 'blob' })
    const got = await drain(served.body)
    t.equal(got.error, undefined)
    t.equal(got.bytes, blob.data.length)
    t.equal(got.digest, blob.digest)
    const resume = b.requests.find((r) => r.headers.range !== undefined)
    t.match(resume?.headers.range, /^bytes=\d+-$/)
    const from = Number(/bytes=(\d+)-/.exec(resume?.headers.range ?? '')?.[1])
    t.ok(from > 0 && from <= cutAt, `resumed from byte ${from}`)
    t.equal(await metricValue(metrics.upstreamResumes), 1)
    await cache.settled()
    t.ok(await blobs.has(blob.digest))
    t.same(await tempFiles(root), [])
  },
)

t.test('a mirror that ignores Range and answers 200 still yields the correct body', async (t) => {
  const blob = randomBlob(2 * MiB)
  const up = await fakeUpstream(t, serveBytes(blob.data, { ignoreRange: true }))
  up.cut('/*', 700_000, { times: 1 })
  const { pool } = testPool(t, poolConfig([up.url]))
  const { cache } = await testCache(t)
  const got = await drain((await cache.serve(blob.digest, { pool, path: 'blob' })).body)
  t.equal(got.digest, blob.digest)
  t.equal(up.requests[1]?.headers.range !== undefined, true, 'a Range was asked for')
})

t.test('a body that stalls is resumed after the idle timeout', async (t) => {
  const blob = randomBlob(2 * MiB)
  const stall = await fakeUpstream(t, (_req, res) => {
    res.writeHead(200, { 'content-length': String(blob.data.length) })
    res.write(blob.data.subarray(0, MiB))
    // then nothing
  })
  const good = await fakeUpstream(t, serveBytes(blob.data))
  const { pool, metrics } = testPool(
    t,
    poolConfig([stall.url, good.url], { timeouts: { bodyIdle: 300 } }),
  )
  const { cache } = await testCache(t, { metrics })
  const started = Date.now()
  const got = await drain((await cache.serve(blob.digest, { pool, path: 'blob' })).body)
  t.equal(got.digest, blob.digest)
  t.ok(Date.now() - started < 5000)
  t.equal(await metricValue(metrics.upstreamErrors, { reason: 'timeout_body' }), 1)
})

t.test(
  'a flipped byte: nothing committed, mismatch counted, the next mirror serves, the bad transfer is cut',
  async (t) => {
    const blob = randomBlob(2 * MiB)
    const bad = await fakeUpstream(t, serveBytes(blob.data))
    bad.corrupt('/*')
    const good = await fakeUpstream(t, serveBytes(blob.data))
    const { pool, metrics } = testPool(t, poolConfig([bad.url, good.url]))
    const { cache, blobs, root } = await testCache(t, { metrics })

    const victim = await cache.serve(blob.digest, { pool, path: 'blob' })
    t.equal(victim.upstream, bad.url)
    const got = await drain(victim.body)
    t.ok(got.error, 'the client of the bad transfer sees its stream cut')
    t.ok(got.bytes < blob.data.length, `and never the complete body (${got.bytes} bytes)`)
    t.equal(await metricValue(metrics.digestMismatches, { upstream: bad.url }), 1)

    const again = await cache.serve(blob.digest, { pool, path: 'blob' })
    t.equal((await drain(again.body)).digest, blob.digest)
    t.equal(good.count(), 1, 'the good mirror served it once')
    t.equal(bad.count(), 1, 'the bad mirror was not asked again')
    await cache.settled()
    t.ok(await blobs.has(blob.digest))
    t.same(await tempFiles(root), [])
  },
)

t.test('every mirror lacking the blob gives BlobUnknownUpstreamError', async (t) => {
  const a = await fakeUpstream(t)
  const b = await fakeUpstream(t)
  const { pool } = testPool(t, poolConfig([a.url, b.url]))
  const { cache, root } = await testCache(t)
  await t.rejects(
    cache.serve(randomBlob(10).digest, { pool, path: 'blob' }),
    BlobUnknownUpstreamError,
  )
  t.equal(b.count(), 1, 'a 404 on one mirror is tried on the next for immutable content')
  t.same(await tempFiles(root), [])
})

t.test(
  '50 concurrent requests for one cold 100 MB blob: one upstream GET, 50 correct bodies',
  async (t) => {
    const blob = randomBlob(100 * MiB)
    const up = await fakeUpstream(t, serveBytes(blob.data))
    const { pool } = testPool(t, poolConfig([up.url]))
    const { cache } = await testCache(t)
    const results = await Promise.all(
      Array.from({ length: 50 }, async () =>
        drain((await cache.serve(blob.digest, { pool, path: 'blob' })).body),
      ),
    )
    t.equal(up.count(), 1)
    t.equal(results.filter((r) => r.digest === blob.digest).length, 50)
  },
)

t.test(
  'a client that stops reading does not stop the others, and a late joiner starts at byte 0',
  async (t) => {
    const blob = randomBlob(16 * MiB)
    const up = await fakeUpstream(t, async (_req, res) => {
      res.writeHead(200, { 'content-length': String(blob.data.length) })
      // Throttled: 1 MiB every 20 ms, so clients overlap with the transfer.
      for (let i = 0; i < blob.data.length; i += MiB) {
        if (!res.write(blob.data.subarray(i, i + MiB)))
          await new Promise((r) => res.once('drain', r))
        await sleep(20)
      }
      res.end()
    })
    const { pool } = testPool(t, poolConfig([up.url]))
    const { cache, blobs } = await testCache(t)
    const stuck = bodyStream((await cache.serve(blob.digest, { pool, path: 'blob' })).body)
    stuck.pause()
    const readers = Array.from({ length: 10 }, async () =>
      drain((await cache.serve(blob.digest, { pool, path: 'blob' })).body),
    )
    await sleep(100)
    const late = drain((await cache.serve(blob.digest, { pool, path: 'blob' })).body)
    const results = await Promise.all([...readers, late])
    t.ok(
      results.every((r) => r.digest === blob.digest),
      'every reading client got the whole blob, the late one too',
    )
    await cache.settled()
    t.ok(await blobs.has(blob.digest), 'the fill completed although one client never read')
    t.equal(up.count(), 1)
    stuck.destroy()
  },
)

t.test('a range request on a miss gets exactly its bytes', async (t) => {
  const blob = randomBlob(3 * MiB)
  const up = await fakeUpstream(t, serveBytes(blob.data))
  const { pool } = testPool(t, poolConfig([up.url]))
  const { cache } = await testCache(t)
  const served = await cache.serve(
    blob.digest,
    { pool, path: 'blob' },
    { range: { start: 1000, end: 1999 } },
  )
  t.same(await readAll(served.body), blob.data.subarray(1000, 2000))
  const hit = await cache.serve(
    blob.digest,
    { pool, path: 'blob' },
    { range: { start: 5, end: 9 } },
  )
  t.same(await readAll(hit.body), blob.data.subarray(5, 10))
})

t.test(
  'a stored blob that rotted on disk is cut, removed, and refetched on the next request',
  async (t) => {
    const blob = randomBlob(MiB)
    const up = await fakeUpstream(t, serveBytes(blob.data))
    const { pool, metrics } = testPool(t, poolConfig([up.url]))
    const { cache, blobs, root } = await testCache(t, { metrics })
    await drain((await cache.serve(blob.digest, { pool, path: 'blob' })).body)
    await cache.settled()
    const hex = blob.digest.slice(7)
    const { open } = await import('node:fs/promises')
    const fh = await open(join(root, 'blobs/sha256', hex.slice(0, 2), hex), 'r+')
    await fh.write(Buffer.from([0x00, 0x01, 0x02]), 0, 3, 100)
    await fh.close()
    const rotten = await drain((await cache.serve(blob.digest, { pool, path: 'blob' })).body)
    t.ok(rotten.error, 'the corrupt read is cut')
    t.ok(rotten.bytes < blob.data.length)
    await sleep(50)
    t.notOk(await blobs.has(blob.digest), 'quarantined')
    const fresh = await drain((await cache.serve(blob.digest, { pool, path: 'blob' })).body)
    t.equal(fresh.digest, blob.digest)
    t.equal(up.count(), 2)
    t.equal(createHash('sha256').update(blob.data).digest('hex'), hex)
  },
)

t.test('fills feed the throughput the fastest selection policy ranks mirrors by', async (t) => {
  const blob = randomBlob(2 * MiB)
  const up = await fakeUpstream(t, serveBytes(blob.data))
  const { pool } = testPool(t, poolConfig([up.url], { selection: 'fastest' }))
  const { cache } = await testCache(t)
  await drain((await cache.serve(blob.digest, { pool, path: 'blob' })).body)
  const stats = pool.mirrors[0]?.stats
  t.ok((stats?.bytesPerMs ?? 0) > 0, `measured ${Math.round(stats?.bytesPerMs ?? 0)} bytes/ms`)
  t.ok((stats?.ttfbMs ?? -1) >= 0)
})

t.test(
  'a range that stops before the last byte ends without waiting for the whole fill',
  async (t) => {
    const blob = randomBlob(2 * MiB)
    const up = await fakeUpstream(t, (_req, res) => {
      res.writeHead(200, { 'content-length': String(blob.data.length) })
      res.write(blob.data.subarray(0, MiB))
      // and stalls: the fill cannot finish while the range is read
    })
    const { pool } = testPool(t, poolConfig([up.url], { timeouts: { bodyIdle: 30_000 } }))
    const { cache } = await testCache(t)
    const served = await cache.serve(
      blob.digest,
      { pool, path: 'blob' },
      { range: { start: 10, end: 1009 } },
    )
    const started = Date.now()
    t.same(await readAll(served.body), blob.data.subarray(10, 1010))
    t.ok(Date.now() - started < 2000, `ended after ${Date.now() - started} ms`)
  },
)

t.test(
  'mirrors that all keep cutting still complete the blob while each response makes progress',
  async (t) => {
    const blob = randomBlob(6 * MiB)
    const a = await fakeUpstream(t, serveBytes(blob.data))
    const b = await fakeUpstream(t, serveBytes(blob.data))
    a.cut('/*', 256 * 1024)
    b.cut('/*', 256 * 1024)
    const { pool, metrics } = testPool(t, poolConfig([a.url, b.url]))
    const { cache, blobs } = await testCache(t, { metrics })
    const got = await drain((await cache.serve(blob.digest, { pool, path: 'blob' })).body)
    t.equal(got.error, undefined)
    t.equal(got.digest, blob.digest)
    const resumes = await metricValue(metrics.upstreamResumes)
    t.ok(resumes > 20, `${resumes} interruptions, each continued`)
    t.ok(
      Math.abs(a.count() - b.count()) <= 1,
      `the mirrors took turns (${a.count()} and ${b.count()} requests)`,
    )
    await cache.settled()
    t.ok(await blobs.has(blob.digest))
  },
)

t.test(
  'a fill gives up after MAX_RESUMES_WITHOUT_PROGRESS interruptions in a row that bring nothing',
  async (t) => {
    const blob = randomBlob(2 * MiB)
    const up = await fakeUpstream(t, serveBytes(blob.data))
    // The first answer brings 1 MiB; every later one cuts before a byte (the newest fault matches first).
    up.cut('/*', 0)
    up.cut('/blob', MiB, { times: 1 })
    const { pool } = testPool(t, poolConfig([up.url]))
    const { cache, root } = await testCache(t)
    const served = await cache.serve(blob.digest, { pool, path: 'blob' })
    const got = await drain(served.body)
    t.type(got.error, FillFailedError, 'the client is cut')
    t.ok(got.bytes < blob.data.length)
    await cache.settled()
    t.equal(up.count(), 1 + MAX_RESUMES_WITHOUT_PROGRESS, 'one answer with bytes, then the stalls')
    t.same(await tempFiles(root), [])
  },
)
