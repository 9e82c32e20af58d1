/**
 * server.maxConnections and server.idleTimeout, as a client sees them: a
 * connection over the cap gets a quick 503 (and the ones already open keep
 * working); a client that stops reading is disconnected after the idle timeout
 * and the file it was being sent is closed.
 */
import { once } from 'node:events'
import { readdir, readlink } from 'node:fs/promises'
import { connect, type Socket } from 'node:net'
import { Readable } from 'node:stream'
import t from 'tap'
import { Client, request } from 'undici'
import { startApp } from '../helpers/app.ts'
import { closedPort, fakeUpstream, serveBytes } from '../helpers/fake-upstream.ts'
import { metricValue } from '../helpers/pool.ts'
import { randomBlob } from '../helpers/streams.ts'

const MiB = 1024 * 1024
/** Bounds for waits on a loaded machine: generous, and polled rather than slept. */
const QUICK_MS = 5_000
const POLL_MS = 50

async function upstreamYaml(extra: string): Promise<string> {
  const port = await closedPort()
  return `server: { ${extra} }
docker: { registries: [{ name: docker.io, default: true, upstreams: [{ url: "http://127.0.0.1:${port}" }], retry: { attempts: 1 } }] }
`
}

async function until(check: () => Promise<boolean> | boolean, boundMs: number): Promise<boolean> {
  const deadline = Date.now() + boundMs
  while (Date.now() < deadline) {
    if (await check()) return true
    await new Promise((resolve) => setTimeout(resolve, POLL_MS))
  }
  return check()
}

t.test(
  'over server.maxConnections a new connection gets a quick 503 while the open ones keep working',
  async (t) => {
    const { url, app } = await startApp(t, { yaml: await upstreamYaml('maxConnections: 2') })
    const first = new Client(url)
    const second = new Client(url)
    t.teardown(async () => Promise.all([first.destroy(), second.destroy()]))
    for (const client of [first, second]) {
      const res = await client.request({ path: '/v2/', method: 'GET' })
      await res.body.dump()
      t.equal(res.statusCode, 200)
    }

    const started = Date.now()
    const third = await request(`${url}/v2/`)
    const body = await third.body.text()
    t.equal(third.statusCode, 503)
    t.ok(Date.now() - started < QUICK_MS, `answered in ${Date.now() - started} ms`)
    t.equal(third.headers['retry-after'], '5')
    t.equal(third.headers.connection, 'close')
    t.match(JSON.parse(body), { errors: [{ code: 'UNAVAILABLE' }] }, 'in the OCI error format')
    t.equal(await metricValue(app.deps.metrics.httpConnectionsRejected), 1)

    for (const client of [first, second]) {
      const res = await client.request({ path: '/v2/', method: 'GET' })
      await res.body.dump()
      t.equal(res.statusCode, 200, 'an open connection is unaffected')
    }

    await first.close()
    t.ok(
      await until(async () => {
        const res = await request(`${url}/healthz`, { reset: true })
        await res.body.dump()
        return res.statusCode === 200
      }, QUICK_MS),
      'a closed connection frees its slot',
    )
  },
)

/** True when `promise` settles within `boundMs`. */
async function within(promise: Promise<unknown>, boundMs: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined
  const bound = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), boundMs)
  })
  try {
    return await Promise.race([promise.then(() => true), bound])
  } finally {
    clearTimeout(timer)
  }
}

/** File descriptors of this process open on `path` (the app runs in-process). */
async function openFdsOn(path: string): Promise<number> {
  let count = 0
  for (const fd of await readdir('/proc/self/fd')) {
    const target = await readlink(`/proc/self/fd/${fd}`).catch(() => '')
    if (target === path) count++
  }
  return count
}

t.test(
  'a client that stops reading is disconnected after server.idleTimeout and its file is closed',
  async (t) => {
    const { url, app, storagePath } = await startApp(t, {
      yaml: await upstreamYaml('idleTimeout: 500ms'),
    })
    const blob = randomBlob(64 * MiB)
    await app.deps.blobs.put(blob.digest, Readable.from([blob.data]))
    const hex = blob.digest.slice('sha256:'.length)
    const path = `${storagePath}/blobs/sha256/${hex.slice(0, 2)}/${hex}`

    const { port } = new URL(url)
    const socket: Socket = connect(Number(port), '127.0.0.1')
    t.teardown(() => socket.destroy())
    await once(socket, 'connect')
    socket.write(`GET /v2/library/x/blobs/${blob.digest} HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n`)
    let received = 0
    let reading = true
    socket.on('data', (chunk: Buffer) => {
      received += chunk.length
      if (reading && received >= MiB) socket.pause()
    })
    socket.on('error', () => undefined)
    t.ok(await until(() => received >= MiB, QUICK_MS), 'the transfer started')
    t.ok(await until(async () => (await openFdsOn(path)) > 0, QUICK_MS), 'the blob is open')

    // The client reads nothing more: the server's writes stall, and the idle timeout must end it.
    t.ok(
      await until(async () => (await openFdsOn(path)) === 0, 20 * QUICK_MS),
      'the server closed the blob file of the stalled response',
    )
    const closed = once(socket, 'close')
    reading = false
    socket.resume()
    t.ok(await within(closed, 6 * QUICK_MS), 'the client saw the connection end')
    t.ok(received < blob.data.length, `the client got ${received} of ${blob.data.length} bytes`)
  },
)

t.test('an idle keep-alive connection is closed after server.idleTimeout', async (t) => {
  const { url } = await startApp(t, { yaml: await upstreamYaml('idleTimeout: 500ms') })
  const { port } = new URL(url)
  const socket = connect(Number(port), '127.0.0.1')
  t.teardown(() => socket.destroy())
  await once(socket, 'connect')
  socket.write('GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n')
  let response = ''
  socket.on('data', (chunk: Buffer) => {
    response += chunk.toString()
  })
  const started = Date.now()
  // Generous for a 500 ms timeout on a loaded machine, and far below the 72 s keep-alive default.
  const closed = await within(once(socket, 'close'), 6 * QUICK_MS)
  t.ok(closed, `closed after ${Date.now() - started} ms`)
  t.match(response, /^HTTP\/1\.1 200/)
})

t.test(
  'a client that stops reading during a fill is disconnected, and the fill still completes',
  async (t) => {
    const blob = randomBlob(64 * MiB)
    const upstream = await fakeUpstream(t, serveBytes(blob.data))
    const { url, app } = await startApp(t, {
      yaml: `server: { idleTimeout: 2s }
docker: { registries: [{ name: docker.io, default: true, upstreams: [{ url: "${upstream.url}" }] }] }
`,
    })
    // The server's side of the connection, to see when it closes it.
    const serverSide = once(app.server, 'connection') as Promise<[Socket]>
    const { port } = new URL(url)
    const socket = connect(Number(port), '127.0.0.1')
    t.teardown(() => socket.destroy())
    await once(socket, 'connect')
    const [accepted] = await serverSide
    const serverClosed = once(accepted, 'close')
    socket.write(`GET /v2/library/x/blobs/${blob.digest} HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n`)
    let received = 0
    let reading = true
    socket.on('data', (chunk: Buffer) => {
      received += chunk.length
      if (reading && received >= MiB) socket.pause()
    })
    socket.on('error', () => undefined)
    const closed = once(socket, 'close')
    t.ok(await until(() => received >= MiB, 4 * QUICK_MS), 'the transfer started')
    await app.services.cache.settled()
    t.ok(await app.deps.blobs.has(blob.digest), 'the fill stored the blob without its reader')
    t.equal(await metricValue(app.deps.metrics.fillsInFlight), 0)
    t.ok(await within(serverClosed, 6 * QUICK_MS), 'the server closed the stalled connection')
    reading = false
    socket.resume()
    t.ok(await within(closed, 6 * QUICK_MS), 'the client saw the connection end')
    t.ok(received < blob.data.length, `the client got ${received} of ${blob.data.length} bytes`)
    t.equal(upstream.count('/v2/'), 1)
  },
)
