import { access, readFile } from 'node:fs/promises'
import { setTimeout as sleep } from 'node:timers/promises'
import t, { type Test } from 'tap'
import { request } from 'undici'
import { startApp } from '../helpers/app.ts'
import { closedPort } from '../helpers/fake-upstream.ts'
import { metricValue } from '../helpers/pool.ts'
import { startRegistry } from '../helpers/registry.ts'
import { randomBlob } from '../helpers/streams.ts'
import { blobFile, flipByte } from '../storage/fixtures/disk.ts'
import { get } from '../helpers/http.ts'

const MiB = 1024 * 1024

/** pullthrough with a real Distribution registry as docker.io and as ghcr.io. */
async function setup(t: Test) {
  const registry = await startRegistry(t)
  const yaml = `docker:
  registries:
    - { name: docker.io, default: true, upstreams: [{ url: "${registry.url}" }] }
    - { name: ghcr.io, upstreams: [{ url: "${registry.url}" }] }
`
  const app = await startApp(t, { yaml })
  return { registry, ...app }
}

t.test('GET /v2/ answers the API version header', async (t) => {
  const { url } = await setup(t)
  const res = await get(`${url}/v2/`)
  t.equal(res.status, 200)
  t.equal(res.headers['docker-distribution-api-version'], 'registry/2.0')
})

t.test('a blob of a real registry comes through byte for byte, then from the cache', async (t) => {
  const { url, registry, logs, app } = await setup(t)
  const blob = randomBlob(3 * MiB)
  await registry.pushBlob('library/busybox', blob.digest, blob.data)
  const first = await get(`${url}/v2/busybox/blobs/${blob.digest}`)
  t.equal(first.status, 200)
  t.ok(first.body.equals(blob.data))
  t.equal(first.headers['docker-content-digest'], blob.digest)
  t.equal(first.headers['content-length'], String(blob.data.length))
  // The fill commits just after the client got its last byte; a request in between joins the fill.
  await app.services.cache.settled()
  const second = await get(`${url}/v2/library/busybox/blobs/${blob.digest}`)
  t.ok(second.body.equals(blob.data))
  const pulls = logs.lines.filter((l) => l.msg === 'pull')
  t.match(pulls, [
    {
      registry: 'docker.io',
      repository: 'library/busybox',
      cache: 'miss',
      bytes: blob.data.length,
    },
    { registry: 'docker.io', repository: 'library/busybox', cache: 'hit', bytes: blob.data.length },
  ])
})

t.test(
  'HEAD gives the size without fetching the blob; Range gives 206 with Content-Range',
  async (t) => {
    const { url, registry, storagePath } = await setup(t)
    const blob = randomBlob(MiB)
    await registry.pushBlob('org/app', blob.digest, blob.data)
    const head = await get(`${url}/v2/org/app/blobs/${blob.digest}`, { method: 'HEAD' })
    t.equal(head.status, 200)
    t.equal(head.headers['content-length'], String(blob.data.length))
    const { readdir } = await import('node:fs/promises')
    t.same(await readdir(`${storagePath}/blobs/sha256`), [], 'HEAD stored nothing')
    const ranged = await get(`${url}/v2/org/app/blobs/${blob.digest}`, {
      headers: { range: 'bytes=100-199' },
    })
    t.equal(ranged.status, 206)
    t.equal(ranged.headers['content-range'], `bytes 100-199/${blob.data.length}`)
    t.ok(ranged.body.equals(blob.data.subarray(100, 200)))
    const bad = await get(`${url}/v2/org/app/blobs/${blob.digest}`, {
      headers: { range: 'bytes=5-1' },
    })
    t.equal(bad.status, 416)
  },
)

t.test(
  'a cached blob that rotted on disk is cut, counted as storage corruption, and fetched again',
  async (t) => {
    const { url, registry, app, storagePath } = await setup(t)
    const blob = randomBlob(2 * MiB)
    await registry.pushBlob('library/rot', blob.digest, blob.data)
    t.equal((await get(`${url}/v2/rot/blobs/${blob.digest}`)).status, 200)
    await app.services.cache.settled()
    const file = blobFile(storagePath, blob.digest)
    await flipByte(file, MiB + 7)

    await t.rejects(get(`${url}/v2/rot/blobs/${blob.digest}`), 'the rotten body is never completed')
    const { metrics } = app.deps
    const onDisk = () =>
      access(file).then(
        () => true,
        () => false,
      )
    // Removal follows the cut: a bounded wait for the file to go.
    for (let i = 0; i < 500 && (await onDisk()); i++) await sleep(10)
    t.notOk(await onDisk(), 'the rotten copy is removed')
    t.equal(await metricValue(metrics.storageCorruptions), 1, 'counted as storage corruption')
    t.equal(await metricValue(metrics.digestMismatches), 0, 'not as an upstream mismatch')

    const again = await get(`${url}/v2/rot/blobs/${blob.digest}`)
    t.equal(again.status, 200)
    t.ok(again.body.equals(blob.data), 'the good bytes, fetched again')
  },
)

t.test('a small cached blob answers ranges, whole or in part, as a large one does', async (t) => {
  const { url, registry, app } = await setup(t)
  const blob = randomBlob(3000)
  await registry.pushBlob('library/small', blob.digest, blob.data)
  const path = `${url}/v2/small/blobs/${blob.digest}`
  t.equal((await get(path)).status, 200)
  await app.services.cache.settled()
  const ranges: [string, number, string | undefined, Buffer | undefined][] = [
    ['bytes=0-', 206, 'bytes 0-2999/3000', blob.data],
    ['bytes=0-9999', 206, 'bytes 0-2999/3000', blob.data],
    ['bytes=10-19', 206, 'bytes 10-19/3000', blob.data.subarray(10, 20)],
    ['bytes=2990-', 206, 'bytes 2990-2999/3000', blob.data.subarray(2990)],
    ['bytes=3000-', 416, undefined, undefined],
  ]
  for (const [range, status, contentRange, body] of ranges) {
    const res = await get(path, { headers: { range } })
    t.equal(res.status, status, range)
    if (contentRange) t.equal(res.headers['content-range'], contentRange, range)
    if (body) t.ok(res.body.equals(body), `${range}: the bytes`)
  }
  const whole = await get(path)
  t.equal(whole.headers['content-length'], '3000')
  t.ok(whole.body.equals(blob.data))
})

t.test(
  'a small cached blob that rotted on disk is fetched again and served whole in the same GET',
  async (t) => {
    const { url, registry, app, storagePath } = await setup(t)
    const blob = randomBlob(3000)
    await registry.pushBlob('library/rot', blob.digest, blob.data)
    t.equal((await get(`${url}/v2/rot/blobs/${blob.digest}`)).status, 200)
    await app.services.cache.settled()
    await flipByte(blobFile(storagePath, blob.digest), 1500)

    const again = await get(`${url}/v2/rot/blobs/${blob.digest}`)
    t.equal(again.status, 200)
    t.ok(again.body.equals(blob.data), 'the good bytes, fetched again at once')
    const { metrics } = app.deps
    t.equal(await metricValue(metrics.storageCorruptions), 1, 'counted as storage corruption')
    await app.services.cache.settled()
    t.ok(
      (await readFile(blobFile(storagePath, blob.digest))).equals(blob.data),
      'the good copy is stored in its place',
    )
  },
)

t.test('?ns= and a registry-name prefix route to that registry', async (t) => {
  const { url, registry, logs } = await setup(t)
  const blob = randomBlob(1000)
  await registry.pushBlob('org/tool', blob.digest, blob.data)
  t.ok((await get(`${url}/v2/org/tool/blobs/${blob.digest}?ns=ghcr.io`)).body.equals(blob.data))
  t.ok((await get(`${url}/v2/ghcr.io/org/tool/blobs/${blob.digest}`)).body.equals(blob.data))
  t.same(
    logs.lines.filter((l) => l.msg === 'pull').map((l) => l.registry),
    ['ghcr.io', 'ghcr.io'],
  )
  const unknown = await get(`${url}/v2/org/tool/blobs/${blob.digest}?ns=quay.io`)
  t.equal(unknown.status, 404)
  t.match(JSON.parse(unknown.body.toString()), { errors: [{ code: 'NAME_UNKNOWN' }] })
})

t.test(
  'every upstream down answers 503 UNAVAILABLE naming the registry, not the upstream',
  async (t) => {
    const port = await closedPort()
    const { url } = await startApp(t, {
      yaml: `docker: { registries: [{ name: docker.io, default: true, upstreams: [{ url: "http://127.0.0.1:${port}", username: u, password: "hunter2-secret" }], retry: { attempts: 1 } }] }\n`,
    })
    const res = await request(`${url}/v2/library/busybox/blobs/${randomBlob(5).digest}`)
    const text = await res.body.text()
    t.equal(res.statusCode, 503)
    t.match(JSON.parse(text), {
      errors: [{ code: 'UNAVAILABLE', detail: { registry: 'docker.io' } }],
    })
    t.notMatch(text, /hunter2|127\.0\.0\.1/)
  },
)
