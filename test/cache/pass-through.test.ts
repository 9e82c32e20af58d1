/**
 * A pass-through fill (the storage cannot be written) keeps at most its
 * memory window; once its last client leaves it stops the upstream transfer,
 * since nothing would be cached. Measured on the real app with a large body
 * from a fault-injecting upstream that counts what it managed to send.
 */
import { once } from 'node:events'
import { request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http'
import { rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { PASSTHROUGH_WINDOW_BYTES } from '../../src/cache/attempt.ts'
import { startApp } from '../helpers/app.ts'
import { fakeUpstream, serveBytes } from '../helpers/fake-upstream.ts'
import { poolConfig, testPool } from '../helpers/pool.ts'
import { testCache } from '../helpers/read-through.ts'
import { drain, randomBlob, readAll } from '../helpers/streams.ts'

const MiB = 1024 * 1024
/** The body the upstream offers: far more than the window. */
const BODY_BYTES = 512 * MiB
/** What the client reads before it goes away. */
const CLIENT_READS_BYTES = 4 * MiB
/** Socket buffers on both sides of two loopback connections, and a chunk in flight: generous. */
const SOCKET_SLACK_BYTES = 16 * MiB
/** RSS noise on a loaded machine (GC timing, undici's chunks, the test's own work): generous. */
const RSS_SLACK_BYTES = 96 * MiB
/** Bound on waiting for the upstream to stop. */
const STOP_TIMEOUT_MS = 30_000
const RSS_SAMPLE_MS = 50

/** An upstream that streams BODY_BYTES (one repeated chunk) with backpressure and counts what it sent. */
function countingUpstream() {
  const chunk = randomBlob(MiB).data
  const state = { sent: 0, closed: false }
  let onClosed: () => void = () => undefined
  const closed = new Promise<void>((resolve) => (onClosed = resolve))
  const handler = async (_req: IncomingMessage, res: ServerResponse) => {
    res.on('close', () => {
      state.closed = true
      onClosed()
    })
    res.writeHead(200, { 'content-length': String(BODY_BYTES) })
    // Bounded: BODY_BYTES / MiB writes at most.
    while (state.sent < BODY_BYTES && !state.closed) {
      const ok = res.write(chunk)
      state.sent += chunk.length
      if (!ok) await Promise.race([once(res, 'drain'), closed])
    }
    res.end()
  }
  return { state, closed, handler }
}

/** GETs `url`, reads about `bytes` of the body, then destroys the connection. */
async function readSomeAndLeave(url: string, bytes: number): Promise<number> {
  const req = httpRequest(url, { agent: false })
  req.end()
  const [res] = (await once(req, 'response')) as [IncomingMessage]
  if (res.statusCode !== 200) throw new Error(`status ${res.statusCode}`)
  let read = 0
  for await (const data of res) {
    read += (data as Buffer).length
    if (read >= bytes) break
  }
  req.destroy()
  return read
}

t.test(
  'a pass-through fill whose client left stops the upstream transfer and stays within its window',
  async (t) => {
    const upstream = countingUpstream()
    const up = await fakeUpstream(t, upstream.handler)
    const { app, url, storagePath, logs } = await startApp(t, {
      yaml: `docker: { registries: [{ name: docker.io, default: true, upstreams: [{ url: "${up.url}" }] }] }\n`,
    })
    // Root ignores permission bits, so make the temp area impossible to write into instead.
    await rm(join(storagePath, 'tmp'), { recursive: true, force: true })
    await writeFile(join(storagePath, 'tmp'), 'not a directory')

    const rssBefore = process.memoryUsage().rss
    let rssPeak = rssBefore
    const sampler = setInterval(() => {
      rssPeak = Math.max(rssPeak, process.memoryUsage().rss)
    }, RSS_SAMPLE_MS)
    t.teardown(() => clearInterval(sampler))

    const digest = randomBlob(16).digest
    const read = await readSomeAndLeave(`${url}/v2/library/big/blobs/${digest}`, CLIENT_READS_BYTES)
    const sentAtLeave = upstream.state.sent
    const stopped = await Promise.race([
      upstream.closed.then(() => true),
      sleep(STOP_TIMEOUT_MS).then(() => false),
    ])
    await app.services.cache.settled()
    // A few more samples, in case memory still grows after the transfer ended.
    await sleep(5 * RSS_SAMPLE_MS)
    clearInterval(sampler)
    const sentAfterLeave = upstream.state.sent - sentAtLeave
    const rssGrowth = rssPeak - rssBefore
    t.comment(
      `client read ${read} bytes; upstream sent ${upstream.state.sent} bytes in all, ` +
        `${sentAfterLeave} after the client left; RSS grew by ${(rssGrowth / MiB).toFixed(1)} MiB`,
    )

    t.ok(stopped, 'the upstream connection was closed')
    t.ok(
      upstream.state.sent <= CLIENT_READS_BYTES + PASSTHROUGH_WINDOW_BYTES + SOCKET_SLACK_BYTES,
      `the upstream sent ${upstream.state.sent} bytes of ${BODY_BYTES}: the window and socket buffers`,
    )
    t.ok(
      sentAfterLeave <= PASSTHROUGH_WINDOW_BYTES + SOCKET_SLACK_BYTES,
      `${sentAfterLeave} bytes were sent after the client left`,
    )
    t.ok(
      rssGrowth <= PASSTHROUGH_WINDOW_BYTES + RSS_SLACK_BYTES,
      `RSS grew by ${(rssGrowth / MiB).toFixed(1)} MiB`,
    )
    t.equal(up.count(), 1, 'one upstream request')
    t.match(logs.raw.join('\n'), /no client reads the pass-through transfer any more/)
  },
)

t.test(
  'a range that starts past the window of a pass-through miss gets its bytes, and a whole read too',
  async (t) => {
    const blob = randomBlob(3 * PASSTHROUGH_WINDOW_BYTES)
    const up = await fakeUpstream(t, serveBytes(blob.data))
    const { pool } = testPool(t, poolConfig([up.url]))
    const { cache, root } = await testCache(t)
    await rm(join(root, 'tmp'), { recursive: true, force: true })
    await writeFile(join(root, 'tmp'), 'not a directory')
    const start = 2 * PASSTHROUGH_WINDOW_BYTES + 5
    const ranged = await cache.serve(
      blob.digest,
      { pool, path: 'blob' },
      { range: { start, end: blob.data.length - 1 } },
    )
    t.ok((await readAll(ranged.body)).equals(blob.data.subarray(start)))
    const whole = await cache.serve(blob.digest, { pool, path: 'blob' })
    t.equal((await drain(whole.body)).digest, blob.digest)
    t.equal(up.count(), 2, 'pass-through fills are not shared: one transfer each')
  },
)
