/**
 * The scrub against a real blob store and embedded metadata store: what it
 * counts, the schedule it keeps across restarts, the lease replicas share,
 * and a shutdown in the middle of a run.
 */
import { rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import t, { type Test } from 'tap'
import { Scrubber, ScrubBusyError, SCRUB_LEASE } from '../../src/cache/scrub.ts'
import { randomBlob } from '../helpers/streams.ts'
import { testCache, type TestCache } from '../helpers/read-through.ts'
import { createLogger } from '../../src/observability/logger.ts'

const DAY_MS = 86_400_000
const MiB = 1024 * 1024

async function stored(t: Test, sizes: number[]) {
  const parts = await testCache(t)
  const blobs = sizes.map((size) => randomBlob(size))
  for (const blob of blobs) {
    await parts.blobs.put(blob.digest, Readable.from([blob.data]))
    await parts.metadata.putBlob(blob.digest, blob.data.length, Date.now())
  }
  return { parts, blobs }
}

function scrubber(
  parts: TestCache,
  options: { intervalMs?: number; owner?: string; rate?: number } = {},
) {
  const scrub = new Scrubber({
    blobs: parts.blobs,
    metadata: parts.metadata,
    metrics: parts.metrics,
    logger: createLogger({ level: 'silent' }),
    now: Date.now,
    intervalMs: options.intervalMs ?? 0,
    rate: options.rate ?? 1024 * MiB,
    owner: options.owner ?? 'replica-a',
  })
  t.teardown(() => scrub.close())
  return scrub
}

const path = (root: string, digest: string) => {
  const hex = digest.slice('sha256:'.length)
  return join(root, 'blobs', 'sha256', hex.slice(0, 2), hex)
}

t.test('a run checks every blob and quarantines only the rotten one', async (t) => {
  const { parts, blobs } = await stored(t, [100, 2 * MiB + 3, 5000])
  const rotten = blobs[1]!
  const bytes = Buffer.from(rotten.data)
  bytes[7] = (bytes[7] ?? 0) ^ 1
  await writeFile(path(parts.root, rotten.digest), bytes)
  const scrub = scrubber(parts)
  const started = await scrub.start('api')
  t.match(started, { running: true, run: { total: { blobs: 3 }, trigger: 'api' } })
  await scrub.settled()
  const { run } = scrub.status()
  t.match(run, { blobs: 3, ok: 2, corrupt: 1, skipped: 0, corruptDigests: [rotten.digest] })
  t.equal(run?.bytes, 100 + 2 * MiB + 3 + 5000, 'every byte was read')
  t.notOk(await parts.blobs.has(rotten.digest), 'quarantined: gone from disk')
  t.equal(await parts.metadata.getBlob(rotten.digest), undefined, 'and from the metadata store')
  t.ok(await parts.blobs.has(blobs[0]!.digest), 'the good ones stay')
  t.equal(
    await parts.metadata.acquireLease(SCRUB_LEASE, 'replica-b', { ttlMs: 1000 }),
    true,
    'the lease is released at the end',
  )
})

t.test('a blob replaced by a new fill during its check is not quarantined', async (t) => {
  const { parts, blobs } = await stored(t, [3 * MiB])
  const blob = blobs[0]!
  const file = path(parts.root, blob.digest)
  // A file with wrong content sits under the name while the scrub reads it...
  const bytes = Buffer.from(blob.data)
  bytes[0] = (bytes[0] ?? 0) ^ 1
  await writeFile(file, bytes)
  let swapped = false
  const result = await parts.blobs.check(blob.digest, async () => {
    if (swapped) return
    swapped = true
    // ...and a verified fill renames good content over it meanwhile.
    await writeFile(`${file}.new`, blob.data)
    await rename(`${file}.new`, file)
  })
  t.equal(result.result, 'changed')
  t.equal((await parts.blobs.check(blob.digest, async () => undefined)).result, 'ok')
  t.equal((await parts.blobs.check(randomBlob(10).digest, async () => undefined)).result, 'missing')
})

t.test('replicas share one lease: the second is told another is scrubbing', async (t) => {
  const { parts } = await stored(t, [100])
  t.ok(await parts.metadata.acquireLease(SCRUB_LEASE, 'replica-b', { ttlMs: 60_000 }))
  const scrub = scrubber(parts)
  const error = await scrub.start('api').catch((e: unknown) => e)
  t.ok(error instanceof ScrubBusyError)
  t.match(error, { message: 'another replica is scrubbing the store' })
})

t.test('the schedule runs a scrub once the last run is an interval old', async (t) => {
  const { parts } = await stored(t, [100, 200])
  await parts.metadata.putDocument('_jobs', 'scrub', {
    fetchedAt: Date.now() - 8 * DAY_MS,
    page: {},
  })
  const scrub = scrubber(parts, { intervalMs: 7 * DAY_MS })
  scrub.startSchedule(20)
  const deadline = Date.now() + 5000
  while (scrub.status().run === null && Date.now() < deadline)
    await new Promise((resolve) => setTimeout(resolve, 20))
  await scrub.settled()
  t.match(scrub.status().run, { trigger: 'schedule', blobs: 2, ok: 2 })
  const next = scrub.status().nextDue ?? 0
  t.ok(next > Date.now() + 6 * DAY_MS, 'the next run is due an interval after this one')
  const record = await parts.metadata.getDocument('_jobs', 'scrub')
  t.ok((record?.fetchedAt ?? 0) > Date.now() - 60_000, 'the run is recorded for the next start')

  const fresh = await stored(t, [100])
  const idle = scrubber(fresh.parts, { intervalMs: 7 * DAY_MS })
  idle.startSchedule(20)
  await new Promise((resolve) => setTimeout(resolve, 200))
  t.equal(
    idle.status().run,
    null,
    'a store never scrubbed starts counting, it does not scrub at once',
  )
  t.ok(await fresh.parts.metadata.getDocument('_jobs', 'scrub'), 'from a recorded baseline')
})

t.test('closing stops a run in the middle and releases the lease', async (t) => {
  const { parts } = await stored(t, [4 * MiB])
  const scrub = scrubber(parts, { rate: MiB })
  await scrub.start('api')
  await new Promise((resolve) => setTimeout(resolve, 300))
  await scrub.close()
  t.match(scrub.status(), {
    running: false,
    run: { blobs: 0, error: 'stopped: the server is shutting down' },
  })
  t.ok(await parts.metadata.acquireLease(SCRUB_LEASE, 'replica-b', { ttlMs: 1000 }))
})
