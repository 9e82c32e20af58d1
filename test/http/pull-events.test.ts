/**
 * One pull event per served artifact, through the real app over HTTP: which
 * responses log one, the bytes they report (what reached the client, also when
 * it leaves mid-body), and the cache and bytes metrics that go with them.
 */
import { get as httpGet } from 'node:http'
import { setTimeout as sleep } from 'node:timers/promises'
import t, { type Test } from 'tap'
import { request } from 'undici'
import { startApp, type TestApp } from '../helpers/app.ts'
import { fakeUpstream } from '../helpers/fake-upstream.ts'
import { OCI_MANIFEST, pushManifest } from '../helpers/manifests.ts'
import { metricValue } from '../helpers/pool.ts'
import { startPypiUpstream } from '../helpers/pypi-upstream.ts'
import { startRegistry } from '../helpers/registry.ts'
import { randomBlob } from '../helpers/streams.ts'

const MiB = 1024 * 1024

async function fetchBody(url: string, method: 'GET' | 'HEAD' = 'GET', accept?: string) {
  const res = await request(url, { method, headers: accept ? { accept } : {} })
  const body = Buffer.from(await res.body.arrayBuffer())
  return { status: res.statusCode, body }
}

/** The pull events once there are `count` of them (bounded wait: they follow the last byte). */
async function pullsAfter(app: TestApp, count: number): Promise<Record<string, unknown>[]> {
  const pulls = () => app.logs.lines.filter((l) => l.msg === 'pull')
  for (let i = 0; i < 250 && pulls().length < count; i++) await sleep(20)
  return pulls()
}

async function docker(t: Test) {
  const registry = await startRegistry(t)
  const app = await startApp(t, {
    yaml: `docker: { registries: [{ name: docker.io, default: true, upstreams: [{ url: "${registry.url}" }] }] }\n`,
  })
  return { registry, app }
}

/** The cache and bytes counters of one protocol, as an operator's dashboard reads them. */
async function counters(app: TestApp, protocol: string) {
  const { cacheRequests, bytesServed, bandwidthSaved } = app.app.deps.metrics
  return {
    hit: await metricValue(cacheRequests, { protocol, result: 'hit' }),
    miss: await metricValue(cacheRequests, { protocol, result: 'miss' }),
    fromCache: await metricValue(bytesServed, { protocol, source: 'cache' }),
    fromUpstream: await metricValue(bytesServed, { protocol, source: 'upstream' }),
    saved: await metricValue(bandwidthSaved, { protocol }),
  }
}

t.test('a blob GET miss, GET hit and HEAD each log one pull event', async (t) => {
  const { registry, app } = await docker(t)
  const blob = randomBlob(MiB + 7)
  await registry.pushBlob('library/busybox', blob.digest, blob.data)
  const url = `${app.url}/v2/busybox/blobs/${blob.digest}`
  t.ok((await fetchBody(url)).body.equals(blob.data))
  await app.app.services.cache.settled()
  t.ok((await fetchBody(url)).body.equals(blob.data))
  const head = await fetchBody(url, 'HEAD')
  t.equal(head.status, 200)
  const pulls = await pullsAfter(app, 3)
  t.match(pulls, [
    { action: 'get', cache: 'miss', bytes: blob.data.length, upstream: registry.url },
    { action: 'get', cache: 'hit', bytes: blob.data.length },
    {
      event: 'pull',
      protocol: 'docker',
      registry: 'docker.io',
      repository: 'library/busybox',
      reference: blob.digest,
      digest: blob.digest,
      action: 'head',
      cache: 'hit',
      bytes: 0,
      clientIp: '127.0.0.1',
    },
  ])
  t.equal(pulls.length, 3)
  t.type(pulls[0]?.durationMs, 'number')
  t.same(await counters(app, 'docker'), {
    hit: 2,
    miss: 1,
    fromCache: blob.data.length,
    fromUpstream: blob.data.length,
    saved: blob.data.length,
  })
})

t.test('a HEAD of a blob that is not cached logs one pull event, a miss', async (t) => {
  const { registry, app } = await docker(t)
  const blob = randomBlob(1000)
  await registry.pushBlob('org/app', blob.digest, blob.data)
  t.equal((await fetchBody(`${app.url}/v2/org/app/blobs/${blob.digest}`, 'HEAD')).status, 200)
  const pulls = await pullsAfter(app, 1)
  t.match(pulls, [{ action: 'head', cache: 'miss', bytes: 0, upstream: registry.url }])
  t.equal(pulls.length, 1)
})

t.test('a manifest by tag logs one pull event per GET and per HEAD, cold or not', async (t) => {
  const { registry, app } = await docker(t)
  const pushed = await pushManifest(registry, 'org/app', 'v1')
  const url = `${app.url}/v2/org/app/manifests/v1`
  t.equal((await fetchBody(url, 'HEAD', OCI_MANIFEST)).status, 200, 'a cold tag, HEAD first')
  t.ok((await fetchBody(url, 'GET', OCI_MANIFEST)).body.equals(pushed.body))
  const pulls = await pullsAfter(app, 2)
  t.match(pulls, [
    { reference: 'v1', digest: pushed.digest, action: 'head', cache: 'miss', bytes: 0 },
    {
      reference: 'v1',
      digest: pushed.digest,
      action: 'get',
      cache: 'hit',
      bytes: pushed.body.length,
    },
  ])
  t.equal(pulls.length, 2)
})

t.test('a client that leaves mid-body is reported with the bytes sent, not the size', async (t) => {
  const { registry, app } = await docker(t)
  const blob = randomBlob(32 * MiB)
  await registry.pushBlob('library/big', blob.digest, blob.data)
  const url = `${app.url}/v2/big/blobs/${blob.digest}`
  t.ok((await fetchBody(url)).body.equals(blob.data))
  await app.app.services.cache.settled()
  const received = await new Promise<number>((resolve, reject) => {
    const req = httpGet(url, (res) => {
      let bytes = 0
      res.on('data', (chunk: Buffer) => {
        bytes += chunk.length
        if (bytes < MiB) return
        res.pause()
        req.destroy()
        resolve(bytes)
      })
    })
    req.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code !== 'ECONNRESET') reject(error)
    })
  })
  const pulls = await pullsAfter(app, 2)
  t.equal(pulls.length, 2)
  const cut = pulls[1]
  t.match(cut, { action: 'get', cache: 'hit' })
  const bytes = Number(cut?.bytes)
  t.ok(bytes >= received, `reported ${bytes} bytes, the client read ${received}`)
  t.ok(bytes < blob.data.length, `reported ${bytes} of ${blob.data.length} bytes`)
  t.equal((await counters(app, 'docker')).fromCache, bytes, 'the bytes metric says the same')
})

t.test('a PyPI page and a file each log one pull event per GET and per HEAD', async (t) => {
  const upstream = await startPypiUpstream(t)
  const app = await startApp(t, {
    yaml: `pypi: { indexes: [{ name: pypi, default: true, upstreams: [{ url: "${upstream.index}" }], fileHosts: ["${upstream.files.origin}"] }] }\n`,
  })
  const page = await fetchBody(`${app.url}/simple/lib/`)
  t.equal(page.status, 200)
  const wheel = upstream.packages.project('lib').files.find((f) => f.kind === 'wheel')!
  const fileUrl = `${app.url}/pypi/pypi/files/lib/${wheel.sha256}/${wheel.filename}`
  const file = await fetchBody(fileUrl)
  t.equal(file.body.length, wheel.size)
  await app.app.services.cache.settled()
  t.equal((await fetchBody(`${app.url}/simple/lib/`, 'HEAD')).status, 200)
  t.equal((await fetchBody(fileUrl, 'HEAD')).status, 200)
  const pulls = await pullsAfter(app, 4)
  t.match(pulls, [
    { protocol: 'pypi', index: 'pypi', project: 'lib', file: '/simple/', action: 'get' },
    {
      protocol: 'pypi',
      index: 'pypi',
      project: 'lib',
      file: wheel.filename,
      digest: `sha256:${wheel.sha256}`,
      action: 'get',
      cache: 'miss',
      bytes: wheel.size,
    },
    { file: '/simple/', action: 'head', cache: 'hit', bytes: 0 },
    { file: wheel.filename, action: 'head', cache: 'hit', bytes: 0 },
  ])
  t.equal(pulls[0]?.bytes, page.body.length, 'the page event counts the bytes of the page sent')
  t.equal(pulls.length, 4)
  t.same(await counters(app, 'pypi'), {
    hit: 2,
    miss: 2,
    fromCache: 0,
    fromUpstream: page.body.length + wheel.size,
    saved: 0,
  })
})

t.test('a PyPI file listed without a sha256 logs one pull event', async (t) => {
  const wheel = Buffer.from('a wheel its index gives no hash for')
  const filename = 'nohash-1.0-py3-none-any.whl'
  // Fault injection: an index page without hashes.
  const upstream = await fakeUpstream(t, (req, res) => {
    if (req.url === '/simple/nohash/') {
      res.writeHead(200, { 'content-type': 'text/html' })
      return res.end(`<a href="/files/${filename}">${filename}</a>`)
    }
    if (req.url === `/files/${filename}`) {
      res.writeHead(200, { 'content-length': String(wheel.length) })
      return res.end(wheel)
    }
    return res.writeHead(404).end()
  })
  const app = await startApp(t, {
    yaml: `pypi: { indexes: [{ name: pypi, default: true, upstreams: [{ url: "${upstream.url}/simple/" }] }] }\n`,
  })
  const file = await fetchBody(`${app.url}/pypi/pypi/files/nohash/_/${filename}`)
  t.ok(file.body.equals(wheel))
  const pulls = await pullsAfter(app, 1)
  t.match(pulls, [
    {
      protocol: 'pypi',
      index: 'pypi',
      project: 'nohash',
      file: filename,
      action: 'get',
      cache: 'miss',
      bytes: wheel.length,
      upstream: upstream.url,
    },
  ])
  t.equal(pulls.length, 1)
})

t.test('errors log no pull event', async (t) => {
  const { app } = await docker(t)
  const missing = randomBlob(10)
  t.equal((await fetchBody(`${app.url}/v2/org/app/blobs/${missing.digest}`)).status, 404)
  t.equal((await fetchBody(`${app.url}/v2/org/app/manifests/nope`)).status, 404)
  // The request lines follow the events a response would log: both are written by then.
  const lines = () => app.logs.lines.filter((l) => l.msg === 'request')
  for (let i = 0; i < 250 && lines().length < 2; i++) await sleep(20)
  t.equal(lines().length, 2)
  t.same(
    app.logs.lines.filter((l) => l.msg === 'pull'),
    [],
  )
})
