/**
 * storage.maxBlobSize against hostile or broken upstreams: a blob declared
 * larger is refused unread, a body that grows past it is cut and discarded,
 * and clients of both protocols get an error that names the limit.
 */
import { once } from 'node:events'
import { readdir } from 'node:fs/promises'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { join } from 'node:path'
import t from 'tap'
import { request } from 'undici'
import { startApp } from '../helpers/app.ts'
import { fakeUpstream, serveBytes } from '../helpers/fake-upstream.ts'
import { metricValue } from '../helpers/pool.ts'
import { startPypiUpstream } from '../helpers/pypi-upstream.ts'
import { drain, randomBlob } from '../helpers/streams.ts'

const MiB = 1024 * 1024
const LIMIT_BYTES = MiB
/** What the hostile upstream offers. */
const HUGE_BYTES = 64 * MiB
/** Socket buffers of one loopback connection and a chunk in flight: generous. */
const SOCKET_SLACK_BYTES = 8 * MiB

/** Streams HUGE_BYTES of one repeated chunk, with or without a Content-Length; counts what it sent. */
function hugeBody(declare: boolean) {
  const chunk = randomBlob(MiB).data
  const state = { sent: 0 }
  const handler = async (_req: IncomingMessage, res: ServerResponse) => {
    const closed = once(res, 'close')
    const connection = { open: true }
    void closed.then(() => (connection.open = false))
    res.writeHead(200, declare ? { 'content-length': String(HUGE_BYTES) } : {})
    // Bounded: HUGE_BYTES / MiB writes at most.
    while (state.sent < HUGE_BYTES && connection.open) {
      state.sent += chunk.length
      if (!res.write(chunk)) await Promise.race([once(res, 'drain'), closed])
    }
    res.end()
  }
  return { state, handler }
}

function dockerYaml(upstreams: readonly string[]): string {
  const list = upstreams.map((u) => `{ url: "${u}" }`).join(', ')
  return `storage: { maxBlobSize: ${LIMIT_BYTES} }
docker:
  registries:
    - { name: docker.io, default: true, upstreams: [${list}], retry: { attempts: 1 } }
`
}

t.test(
  'a blob declared larger than storage.maxBlobSize is refused unread with a 502 naming the limit',
  async (t) => {
    const huge = hugeBody(true)
    const up = await fakeUpstream(t, huge.handler)
    const { app, url, storagePath, logs } = await startApp(t, { yaml: dockerYaml([up.url]) })
    const digest = randomBlob(16).digest
    const res = await request(`${url}/v2/library/big/blobs/${digest}`)
    const body = (await res.body.json()) as { errors: { code: string; message: string }[] }
    t.equal(res.statusCode, 502)
    t.match(body.errors[0]?.message, /storage\.maxBlobSize: 1048576 bytes/)
    await app.services.cache.settled()
    t.same(await readdir(join(storagePath, 'tmp')), [], 'no temp file')
    t.ok(huge.state.sent <= SOCKET_SLACK_BYTES, `the upstream sent ${huge.state.sent} bytes`)
    const metrics = app.deps.metrics
    t.equal(await metricValue(metrics.upstreamErrors, { reason: 'too_large' }), 1)
    t.match(logs.raw.join('\n'), /larger than storage\.maxBlobSize; refused/)
  },
)

t.test(
  'a body that grows past storage.maxBlobSize is cut and its temp file discarded',
  async (t) => {
    const huge = hugeBody(false)
    const up = await fakeUpstream(t, huge.handler)
    const { app, url, storagePath, logs } = await startApp(t, { yaml: dockerYaml([up.url]) })
    const digest = randomBlob(16).digest
    const res = await request(`${url}/v2/library/big/blobs/${digest}`)
    const got = await drain(res.body)
    t.ok(got.error, 'the client does not get a complete body')
    t.ok(got.bytes <= LIMIT_BYTES, `the client got ${got.bytes} bytes`)
    await app.services.cache.settled()
    t.same(await readdir(join(storagePath, 'tmp')), [], 'the temp file is gone')
    t.ok(
      huge.state.sent <= LIMIT_BYTES + SOCKET_SLACK_BYTES,
      `the upstream sent ${huge.state.sent} bytes`,
    )
    const metrics = app.deps.metrics
    t.equal(await metricValue(metrics.upstreamErrors, { reason: 'too_large' }), 1)
    t.match(logs.raw.join('\n'), /larger than storage\.maxBlobSize; refused/)
  },
)

t.test(
  'a mirror that declares more than the limit is skipped, and the next mirror serves the blob',
  async (t) => {
    const blob = randomBlob(512 * 1024)
    const liar = await fakeUpstream(t, hugeBody(true).handler)
    const good = await fakeUpstream(t, serveBytes(blob.data))
    const { url } = await startApp(t, { yaml: dockerYaml([liar.url, good.url]) })
    const res = await request(`${url}/v2/library/app/blobs/${blob.digest}`)
    t.equal(res.statusCode, 200)
    t.equal((await drain(res.body)).digest, blob.digest)
    t.equal(liar.count(), 1, 'the oversized mirror was asked once')
    t.equal(good.count(), 1)
  },
)

t.test('every mirror declaring more than the limit: each is asked once, then 502', async (t) => {
  const a = await fakeUpstream(t, hugeBody(true).handler)
  const b = await fakeUpstream(t, hugeBody(true).handler)
  const { url } = await startApp(t, { yaml: dockerYaml([a.url, b.url]) })
  const res = await request(`${url}/v2/library/app/blobs/${randomBlob(16).digest}`)
  await res.body.dump()
  t.equal(res.statusCode, 502)
  t.equal(a.count(), 1)
  t.equal(b.count(), 1)
})

t.test('a Python file over the limit answers 502 naming the limit, as text and JSON', async (t) => {
  const upstream = await startPypiUpstream(t)
  const wheel = upstream.packages.project('lib').files.find((f) => f.kind === 'wheel')!
  const { url } = await startApp(t, {
    yaml: `storage: { maxBlobSize: ${wheel.size - 1} }
pypi:
  indexes:
    - name: pypi
      default: true
      upstreams: [{ url: "${upstream.index}" }]
      fileHosts: ["${upstream.files.origin}"]
`,
  })
  const file = `${url}/pypi/pypi/files/lib/${wheel.sha256}/${wheel.filename}`
  const text = await request(file)
  t.equal(text.statusCode, 502)
  t.match(await text.body.text(), `storage.maxBlobSize: ${wheel.size - 1} bytes`)
  const json = await request(file, { headers: { accept: 'application/json' } })
  t.equal(json.statusCode, 502)
  t.match(await json.body.json(), { status: 502, message: /storage\.maxBlobSize/ })
})
