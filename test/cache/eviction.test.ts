import { Readable } from 'node:stream'
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { request } from 'undici'
import { Evictor, SHARED_EVICTION_GRACE_MS } from '../../src/cache/eviction.ts'
import { createLogger } from '../../src/observability/logger.ts'
import { digestOf } from '../../src/storage/digest.ts'
import { startApp } from '../helpers/app.ts'
import { fakeUpstream } from '../helpers/fake-upstream.ts'
import { LogCapture } from '../helpers/log-capture.ts'
import { metricValue, poolConfig, testPool } from '../helpers/pool.ts'
import { testCache } from '../helpers/read-through.ts'
import { startRedis } from '../helpers/redis-server.ts'
import { startRegistry } from '../helpers/registry.ts'
import { drain, randomBlob } from '../helpers/streams.ts'
import { bodyStream } from '../../src/cache/served-body.ts'

const MiB = 1024 * 1024

t.test(
  'LRU eviction under a small cap frees space and never removes a blob being read',
  async (t) => {
    const blobs = ['a', 'b', 'c', 'd'].map(() => randomBlob(MiB))
    const byPath = new Map(blobs.map((b, i) => [`/blob${i}`, b.data]))
    const up = await fakeUpstream(t, (req, res) => {
      const data = byPath.get(req.url ?? '')
      if (!data) return res.writeHead(404).end()
      res.writeHead(200, { 'content-length': String(data.length) }).end(data)
    })
    const { pool, metrics } = testPool(t, poolConfig([up.url]))
    const cache = await testCache(t, { metrics })
    const evictor = new Evictor({
      blobs: cache.blobs,
      metadata: cache.metadata,
      metrics,
      logger: createLogger({ level: 'silent', destination: new LogCapture() }),
      inUse: cache.cache.inUse,
      maxSize: 3.5 * MiB,
      lowWatermark: 0.7,
    })
    const [a, b, c, d] = [blobs[0]!, blobs[1]!, blobs[2]!, blobs[3]!]
    for (const [i, blob] of [a, b, c].entries()) {
      await drain((await cache.cache.serve(blob.digest, { pool, path: `blob${i}` })).body)
      await cache.cache.settled()
      await sleep(5) // distinct access times
    }
    t.equal(await evictor.run(), 0, 'nothing to do under the cap')

    // A client is reading the least recently used blob while the cache fills up.
    const reading = bodyStream((await cache.cache.serve(a.digest, { pool, path: 'blob0' })).body)
    reading.pause()
    await drain((await cache.cache.serve(d.digest, { pool, path: 'blob3' })).body)
    await cache.cache.settled()
    const evicted = await evictor.run()

    t.equal(evicted, 2 * MiB, 'evicted down to the low watermark')
    t.ok(await cache.blobs.has(a.digest), 'the blob being read stays')
    t.notOk(await cache.blobs.has(b.digest))
    t.notOk(await cache.blobs.has(c.digest))
    t.ok(await cache.blobs.has(d.digest))
    t.equal(await metricValue(metrics.evictions), 2)
    t.equal(await metricValue(metrics.evictedBytes), 2 * MiB)
    t.equal(await metricValue(metrics.cacheSizeBytes), 2 * MiB)
    reading.resume()
    t.equal((await drain(reading)).digest, a.digest, 'and its reader completes')
  },
)

t.test('a pinned blob is never evicted, however long unused', async (t) => {
  const cache = await testCache(t)
  const evictor = new Evictor({
    blobs: cache.blobs,
    metadata: cache.metadata,
    metrics: cache.metrics,
    logger: createLogger({ level: 'silent', destination: new LogCapture() }),
    inUse: cache.cache.inUse,
    maxSize: 2.5 * MiB,
    lowWatermark: 0.5,
  })
  const blobs = ['a', 'b', 'c'].map(() => randomBlob(MiB))
  for (const [i, blob] of blobs.entries()) {
    await cache.blobs.put(blob.digest, Readable.from([blob.data]))
    await cache.metadata.putBlob(blob.digest, MiB, 1000 + i)
  }
  const [oldest, middle, newest] = [blobs[0]!, blobs[1]!, blobs[2]!]
  await cache.metadata.setPinned(oldest.digest, true)
  t.equal(await evictor.run(), 2 * MiB, 'down to the low watermark without the pinned one')
  t.ok(await cache.blobs.has(oldest.digest), 'the pinned, least recently used blob stays')
  t.notOk(await cache.blobs.has(middle.digest))
  t.notOk(await cache.blobs.has(newest.digest))
})

t.test('with several replicas only the lease holder evicts', async (t) => {
  const cache = await testCache(t)
  await cache.metadata.putBlob(randomBlob(1).digest, 10 * MiB, 1)
  const evictor = new Evictor({
    blobs: cache.blobs,
    metadata: cache.metadata,
    metrics: cache.metrics,
    logger: createLogger({ level: 'silent', destination: new LogCapture() }),
    inUse: cache.cache.inUse,
    maxSize: MiB,
    lowWatermark: 0.9,
  })
  t.ok(await cache.metadata.acquireLease('eviction', 'another-replica', { ttlMs: 60_000 }))
  t.equal(await evictor.run(), 0, 'another replica holds the eviction lease')
  await cache.metadata.releaseLease('eviction', 'another-replica')
  t.equal(await evictor.run(), 10 * MiB)
})

t.test('blobs on disk unknown to the metadata store are recorded at start-up', async (t) => {
  const { reconcileBlobs } = await import('../../src/cache/reconcile.ts')
  const { Readable } = await import('node:stream')
  const cache = await testCache(t)
  const blob = randomBlob(1000)
  await cache.blobs.put(blob.digest, Readable.from([blob.data]))
  const logger = createLogger({ level: 'silent', destination: new LogCapture() })
  t.equal(await reconcileBlobs(cache.blobs, cache.metadata, logger), 1)
  t.equal((await cache.metadata.getBlob(blob.digest))?.size, 1000)
  t.equal(await reconcileBlobs(cache.blobs, cache.metadata, logger), 0, 'idempotent')
})

t.test(
  'with storage shared between replicas, blobs another replica read recently are spared',
  async (t) => {
    const redis = await startRedis(t)
    const registry = await startRegistry(t)
    const [old, read, fresh] = [randomBlob(MiB), randomBlob(MiB), randomBlob(MiB)]
    for (const blob of [old, read, fresh])
      await registry.pushBlob('library/data', blob.digest, blob.data)
    const yaml = (maxSize: number) => `storage: { maxSize: ${maxSize}, lowWatermark: 0.5 }
metadata: { redis: { url: "${redis.url}", connectTimeout: 2s, commandTimeout: 2s } }
docker: { registries: [{ name: docker.io, default: true, upstreams: [{ url: "${registry.url}" }] }] }
`
    // The evicting replica, and a serving one on the same volume and Redis (never over its cap).
    const evictorClock = { now: Date.now() }
    const evicting = await startApp(t, {
      yaml: yaml(1.5 * MiB),
      deps: { now: () => evictorClock.now },
    })
    const servingClock = { now: evictorClock.now - 2 * SHARED_EVICTION_GRACE_MS }
    const serving = await startApp(t, {
      yaml: yaml(100 * MiB),
      env: { PULLTHROUGH_STORAGE_PATH: evicting.storagePath },
      deps: { now: () => servingClock.now },
    })
    const metadata = serving.app.deps.metadata
    const pull = async (blob: { digest: string }) => {
      const res = await request(`${serving.url}/v2/library/data/blobs/${blob.digest}`)
      t.equal(res.statusCode, 200)
      t.equal(digestOf(Buffer.from(await res.body.arrayBuffer())), blob.digest)
      for (let i = 0; i < 200 && !(await metadata.getBlob(blob.digest)); i++) await sleep(10)
    }
    // Stored long ago; one of them read again just now, and one stored just now.
    await pull(old)
    await pull(read)
    servingClock.now = evictorClock.now
    await pull(read)
    await pull(fresh)
    await serving.app.services.accesses.flush()

    const evictor = evicting.app.services.evictor
    t.equal(await evictor.run(), MiB, 'only the blob nobody read for long is evicted')
    const blobs = evicting.app.deps.blobs
    t.notOk(await blobs.has(old.digest))
    t.ok(await blobs.has(read.digest), 'the blob read on the other replica stays')
    t.ok(await blobs.has(fresh.digest), 'the blob stored on the other replica stays')
    t.match(evicting.logs.raw.join('\n'), /the cache stays over its target/)

    evictorClock.now += SHARED_EVICTION_GRACE_MS + 1
    t.equal(await evictor.run(), 2 * MiB, 'after the grace period they go too')
    t.notOk(await blobs.has(read.digest))
  },
)
