import { readdir, utimes } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { createLogger } from '../../src/observability/logger.ts'
import { BlobStore, STALE_TEMP_MS, type BlobWriter } from '../../src/storage/blob-store.ts'
import { sweepStaleTemps } from '../../src/storage/temp-sweeper.ts'
import { tempDir } from '../helpers/config.ts'
import { LogCapture } from '../helpers/log-capture.ts'
import { randomBlob } from '../helpers/streams.ts'

/** Two downloads in tmp/: one of a replica that died (untouched for longer than STALE_TEMP_MS), one live. */
async function abandonedAndLive(
  store: BlobStore,
): Promise<{ abandoned: BlobWriter; live: BlobWriter }> {
  const abandoned = await store.createWriter()
  abandoned.write(Buffer.alloc(10))
  const live = await store.createWriter()
  live.write(Buffer.alloc(10))
  await new Promise((resolve) => setImmediate(resolve))
  const old = new Date(Date.now() - STALE_TEMP_MS - 60_000)
  await utimes(abandoned.tempPath, old, old)
  return { abandoned, live }
}

t.test(
  'a replica starting on a shared volume leaves the others downloads in tmp/ alone',
  async (t) => {
    const root = await tempDir(t)
    const running = await BlobStore.open(root, { shared: true })
    const blob = randomBlob(64 * 1024)
    const writer = await running.createWriter()
    writer.write(blob.data.subarray(0, 1000))
    // Another replica starts meanwhile.
    await BlobStore.open(root, { shared: true })
    writer.end(blob.data.subarray(1000))
    t.same(
      await writer.commit(blob.digest),
      { size: blob.data.length },
      'its download still commits',
    )
    t.ok(await running.has(blob.digest))
  },
)

t.test(
  'on a shared volume, temp files untouched for STALE_TEMP_MS are removed at start-up',
  async (t) => {
    const root = await tempDir(t)
    const store = await BlobStore.open(root, { shared: true })
    const { abandoned, live } = await abandonedAndLive(store)
    await BlobStore.open(root, { shared: true })
    t.same(await readdir(join(root, 'tmp')), [live.tempPath.split('/').at(-1)])
    await live.abort()
    await abandoned.abort()
  },
)

t.test('an exclusive store empties tmp/ at start-up', async (t) => {
  const root = await tempDir(t)
  const store = await BlobStore.open(root)
  const writer = await store.createWriter()
  writer.write(Buffer.alloc(10))
  await BlobStore.open(root)
  t.same(await readdir(join(root, 'tmp')), [])
  await writer.abort()
})

t.test(
  'a running replica removes temp files abandoned by a replica that died, and keeps live ones',
  async (t) => {
    const root = await tempDir(t)
    const store = await BlobStore.open(root, { shared: true })
    const logs = new LogCapture()
    const sweeper = sweepStaleTemps(store, createLogger({ level: 'info', destination: logs }), 20)
    t.teardown(() => sweeper.close())
    const { abandoned, live } = await abandonedAndLive(store)
    const deadline = Date.now() + 5000
    const logged = () => logs.raw.some((l) => l.includes('removed abandoned temp files'))
    // The file goes before the sweep's promise resolves and logs: wait for both.
    while (((await readdir(join(root, 'tmp'))).length > 1 || !logged()) && Date.now() < deadline)
      await new Promise((resolve) => setTimeout(resolve, 20))
    t.same(await readdir(join(root, 'tmp')), [live.tempPath.split('/').at(-1)])
    t.match(logs.raw.join('\n'), /"removed":1,.*removed abandoned temp files/)
    await live.abort()
    await abandoned.abort()
  },
)
