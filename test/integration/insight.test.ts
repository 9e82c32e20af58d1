/**
 * What the insight API reports after real pulls: skopeo copies an image and
 * pip installs a package through pullthrough (real Distribution registry,
 * test-owned PyPI index), then /-/api/v1 answers with the counts, bytes and
 * states the pull events recorded, on the embedded store and on Redis, where
 * two replicas answer for each other.
 */
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { request } from 'undici'
import { startApp, type TestApp } from '../helpers/app.ts'
import { tempDir } from '../helpers/config.ts'
import { buildImage, pullImage } from '../helpers/images.ts'
import { pipInstallThrough } from '../helpers/pypi-packages.ts'
import { indexYaml, startPypiUpstream } from '../helpers/pypi-upstream.ts'
import { startRedis } from '../helpers/redis-server.ts'
import { startRegistry } from '../helpers/registry.ts'

const KiB = 1024
const TOKEN = 'insight-test-token-0123456789'
const UPSTREAM_PASSWORD = 'registry-pass-never-shown'

interface Json {
  readonly status: number
  readonly body: Record<string, unknown> & { items?: Record<string, unknown>[] }
  readonly text: string
}

/** GET /-/api/v1/<path> with `token` (null: no Authorization header). */
async function api(app: TestApp, path: string, token: string | null = TOKEN): Promise<Json> {
  const res = await request(`${app.url}/-/api/v1/${path}`, {
    headers: token === null ? {} : { authorization: `Bearer ${token}` },
  })
  const text = await res.body.text()
  return { status: res.statusCode, body: JSON.parse(text) as Json['body'], text }
}

/** GET pull events the app logged, by repository/project. */
function loggedPulls(app: TestApp, key: 'repository' | 'project', name: string) {
  const pulls = app.logs.lines.filter(
    (l) => l.msg === 'pull' && l.action === 'get' && l[key] === name,
  )
  return { count: pulls.length, bytes: pulls.reduce((sum, l) => sum + Number(l.bytes), 0) }
}

async function setUp(t: Test, extra = '') {
  const registry = await startRegistry(t, {
    auth: { username: 'puller', password: UPSTREAM_PASSWORD },
  })
  const image = await buildImage(join(await tempDir(t, 'pt-img-'), 'app'), {
    layers: [4 * KiB, 300 * KiB],
  })
  await registry.pushImage(image, 'library/app:1.0')
  const index = await startPypiUpstream(t)
  const yaml = `docker:
  registries:
    - name: docker.io
      default: true
      upstreams: [{ url: "${registry.url}", username: puller, password: "${UPSTREAM_PASSWORD}" }]
${indexYaml([index])}admin: { token: "${TOKEN}" }
${extra}`
  return { registry, yaml }
}

async function pullThrough(t: Test, app: TestApp): Promise<void> {
  const host = new URL(app.url).host
  await pullImage(t, `${host}/app:1.0`, join(await tempDir(t, 'pt-out-'), 'app'))
  const run = await pipInstallThrough(t, app.url, ['app'])
  t.equal(run.code, 0, run.stderr)
  await app.app.services.cache.settled()
}

t.test('after skopeo and pip pulls the API shows counts, bytes and upstream health', async (t) => {
  const { registry, yaml } = await setUp(t)
  const app = await startApp(t, { yaml })
  await pullThrough(t, app)
  await app.app.services.pulls?.flush()

  const denied = await api(app, 'summary', null)
  t.equal(denied.status, 401, 'no token: 401')
  t.match(denied.body, { error: 'PT_API_UNAUTHORIZED' })
  t.equal((await api(app, 'summary', 'wrong-token-wrong-token')).status, 401, 'wrong token: 401')

  const docker = loggedPulls(app, 'repository', 'library/app')
  t.ok(docker.count >= 4, `skopeo pulled manifest, config and layers (${docker.count} GETs)`)
  const repositories = await api(app, 'repositories')
  t.equal(repositories.status, 200)
  t.match(repositories.body.items, [
    {
      protocol: 'docker',
      pool: 'docker.io',
      name: 'library/app',
      pulls: { total: docker.count, miss: docker.count, hit: 0 },
      bytesServed: docker.bytes,
      bytesFromUpstream: docker.bytes,
      clients: 1,
    },
  ])

  const app_ = loggedPulls(app, 'project', 'app')
  const lib = loggedPulls(app, 'project', 'lib')
  const projects = await api(app, 'projects?sort=bytes')
  t.same(
    projects.body.items?.map((p) => [p.name, (p.pulls as { total: number }).total, p.bytesServed]),
    [
      ['app', app_.count, app_.bytes],
      ['lib', lib.count, lib.bytes],
    ].sort((a, b) => Number(b[2]) - Number(a[2])),
    'pip pulled the page and the wheel of app and of its dependency lib',
  )
  const namespaces = await api(app, 'repositories?rollup=namespace')
  t.match(namespaces.body.items, [{ name: 'library', pulls: { total: docker.count } }])

  // The same pulls again: served from the cache.
  await pullThrough(t, app)
  await app.app.services.pulls?.flush()
  const summary = await api(app, 'summary')
  const all = loggedPulls(app, 'repository', 'library/app')
  const hour = (summary.body.windows as Record<string, Record<string, Record<string, unknown>>>)[
    '1h'
  ]
  t.match(hour?.docker, {
    pulls: { total: all.count, miss: docker.count },
    bytesServed: all.bytes,
    bytesFromCache: all.bytes - docker.bytes,
  })
  t.ok(Number(hour?.docker?.hitRatio) > 0.4, `hit ratio ${String(hour?.docker?.hitRatio)}`)
  t.match(summary.body.disk, { maxBytes: 50 * 1024 ** 3 })
  t.ok((summary.body.disk as { usedBytes: number }).usedBytes > 300 * KiB)

  const events = await api(app, 'events?protocol=pypi&limit=3')
  t.equal(events.body.items?.length, 3)
  t.ok(events.body.items?.every((e) => e.protocol === 'pypi' && e.action === 'get'))
  const hits = await api(app, 'events?repository=library/app&result=hit')
  t.ok((hits.body.items?.length ?? 0) >= 1)
  t.ok(hits.body.items?.every((e) => e.cache === 'hit' && e.subject === 'library/app'))

  const upstreams = await api(app, 'upstreams')
  t.match(upstreams.body.items, [
    { protocol: 'docker', kind: 'registry', upstream: registry.url, state: 'healthy' },
  ])
  const mirror = upstreams.body.items?.[0]
  t.ok(Number(mirror?.requests) >= 3 && Number(mirror?.bytesFetched) > 300 * KiB)
  t.notMatch(upstreams.text, UPSTREAM_PASSWORD, 'no credentials in the answer')

  const artifacts = await api(app, 'artifacts?sort=size&limit=1')
  t.equal(artifacts.body.items?.[0]?.size, Math.max(...(await blobSizes(app))))
  t.match(artifacts.body.items?.[0], { kind: 'layer', mediaType: 'application/gzip', stale: false })
  t.same(
    artifacts.body.items?.[0]?.references,
    [
      {
        protocol: 'docker',
        pool: 'docker.io',
        name: 'library/app',
        reference: null,
        fetchedAt: null,
        stale: null,
        current: null,
      },
    ],
    'the largest blob, a layer, was pulled through library/app by digest',
  )
  const catalog = await api(app, 'artifacts?limit=500')
  const referenced = (test: (r: { name: string; reference: string | null }) => boolean) =>
    catalog.body.items?.find((a) =>
      (a.references as { name: string; reference: string | null }[]).some(test),
    )
  t.match(
    referenced((r) => r.name === 'library/app' && r.reference === '1.0'),
    {
      kind: 'manifest',
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      stale: false,
      references: [{ reference: '1.0', fetchedAt: Number, stale: false, current: true }],
    },
    'the manifest is referenced by its tag, fresh',
  )
  t.match(
    referenced((r) => r.name === 'lib' && r.reference?.endsWith('.whl') === true),
    {
      kind: 'wheel',
      mediaType: 'application/zip',
      references: [{ protocol: 'pypi', fetchedAt: Number, stale: false, current: null }],
    },
    'a wheel is referenced by its project and file name; the page is fresh',
  )
  t.equal(
    catalog.body.items?.filter((a) => a.kind === 'config').length,
    1,
    'the image config is told apart from the layers',
  )
  t.equal(artifacts.body.next, 1)
  t.equal((await api(app, 'unused?days=1')).body.total, 0, 'everything was pulled today')

  const bad = await api(app, 'repositories?sort=colour')
  t.equal(bad.status, 400)
  t.match(bad.body.message, /sort/)
  t.match((await api(app, 'events?limit=0')).body.message, /limit/)
  t.equal((await api(app, 'summary?x=1')).body.message, 'unknown query parameter: x')

  // A mirror that is down: breaker open, last failure named, still no secret.
  await registry.stop()
  for (let i = 0; i < 6; i++)
    await request(`${app.url}/v2/library/other/manifests/latest`).then((r) => r.body.dump())
  const down = await api(app, 'upstreams')
  t.match(down.body.items, [{ state: 'breaker open', lastFailure: { reason: String } }])
  t.notMatch(down.text, UPSTREAM_PASSWORD)
})

t.test('the catalog marks a tag served stale while its registry is down', async (t) => {
  const { registry, yaml } = await setUp(t)
  let offset = 0
  const app = await startApp(t, { yaml, deps: { now: () => Date.now() + offset } })
  await pullThrough(t, app)
  await app.app.services.pulls?.flush()
  const tagged = async () => {
    const catalog = await api(app, 'artifacts?limit=500')
    return catalog.body.items?.find((a) =>
      (a.references as { reference: string | null }[]).some((r) => r.reference === '1.0'),
    )
  }
  t.match(await tagged(), { stale: false, references: [{ stale: false, current: true }] })

  await registry.stop()
  offset = 10 * 60_000 // past the default tagTTL of 5 minutes
  const res = await request(`${app.url}/v2/library/app/manifests/1.0`, {
    headers: { accept: 'application/vnd.oci.image.manifest.v1+json' },
  })
  await res.body.dump()
  t.equal(res.statusCode, 200, 'the cached manifest is served while the registry is down')
  await app.app.services.pulls?.flush()
  t.match(await tagged(), { stale: true, references: [{ stale: true, current: true }] })
  const page = await request(`${app.url}/-/catalog`, {
    headers: { authorization: `Basic ${Buffer.from(`admin:${TOKEN}`).toString('base64')}` },
  })
  const html = await page.body.text()
  t.match(html, /<code\s*>library\/app:1\.0<\/code\s*>\s*<span class="stale-ref">\(stale\)<\/span>/)
  t.match(html, /<td title="application\/gzip">layer<\/td>/)
  const summary = await api(app, 'summary')
  const hour = (summary.body.windows as Record<string, Record<string, Record<string, unknown>>>)[
    '1h'
  ]
  t.match(hour?.docker, { pulls: { stale: 1 } }, 'the statistics count the stale pull')
})

t.test('two replicas on one Redis answer for each other', async (t) => {
  const redis = await startRedis(t)
  const { yaml } = await setUp(t, `metadata: { redis: { url: "${redis.url}" } }\n`)
  const storage = await tempDir(t, 'pt-shared-')
  const env = { PULLTHROUGH_STORAGE_PATH: storage }
  const one = await startApp(t, { yaml, env })
  const two = await startApp(t, { yaml, env })
  await pullThrough(t, one)
  const host = new URL(two.url).host
  await pullImage(t, `${host}/app:1.0`, join(await tempDir(t, 'pt-out-'), 'two'))
  await Promise.all([one.app.services.pulls?.flush(), two.app.services.pulls?.flush()])
  const both =
    loggedPulls(one, 'repository', 'library/app').count +
    loggedPulls(two, 'repository', 'library/app').count
  for (const replica of [one, two]) {
    const repositories = await api(replica, 'repositories')
    t.match(repositories.body.items, [{ name: 'library/app', pulls: { total: both } }])
    const projects = await api(replica, 'projects')
    t.ok(
      projects.body.items?.some((p) => p.name === 'lib'),
      'pip pulls through replica one',
    )
    // The status page reads the same shared statistics.
    const page = await request(`${replica.url}/-/repositories`, {
      headers: { authorization: `Basic ${Buffer.from(`admin:${TOKEN}`).toString('base64')}` },
    })
    const html = await page.body.text()
    t.equal(page.statusCode, 200)
    t.match(html, new RegExp(`<code>library/app</code></td>\\s*<td class="num">${both}</td>`))
  }
})

async function blobSizes(app: TestApp): Promise<number[]> {
  const blobs = await app.app.deps.metadata.leastRecentlyUsed(1000)
  return blobs.map((b) => b.size)
}
