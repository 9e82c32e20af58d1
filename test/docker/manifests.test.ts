import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { startApp } from '../helpers/app.ts'
import { fakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.ts'
import {
  DOCKER_LIST,
  DOCKER_MANIFEST,
  OCI_INDEX,
  OCI_MANIFEST,
  pushIndex,
  pushManifest,
} from '../helpers/manifests.ts'
import { metricValue } from '../helpers/pool.ts'
import { startRegistry, type TestRegistry } from '../helpers/registry.ts'
import { digestOf } from '../../src/storage/digest.ts'
import { get } from '../helpers/http.ts'

/** What dockerd sends when it pulls (moby distribution/pull_v2.go): every manifest type. */
const DOCKER_ACCEPT = [
  DOCKER_MANIFEST,
  DOCKER_LIST,
  OCI_MANIFEST,
  OCI_INDEX,
  'application/vnd.docker.distribution.manifest.v1+prettyjws',
  'application/json',
].join(', ')

const TAG_TTL_MS = 60_000

interface Setup {
  readonly url: string
  readonly registry: TestRegistry
  readonly clock: { now: number }
  readonly app: Awaited<ReturnType<typeof startApp>>
}

/** pullthrough in front of a real registry (and optional fake mirrors first), with a clock the test moves. */
async function setup(t: Test, options: { before?: FakeUpstream[] } = {}): Promise<Setup> {
  const registry = await startRegistry(t)
  const clock = { now: Date.now() }
  const upstreams = [...(options.before ?? []).map((f) => f.url), registry.url]
    .map((u) => `{ url: "${u}" }`)
    .join(', ')
  const yaml = `docker:
  registries:
    - name: docker.io
      default: true
      tagTTL: ${TAG_TTL_MS}ms
      upstreams: [${upstreams}]
      retry: { attempts: 1 }
      breaker: { failures: 100 }
    - { name: ghcr.io, upstreams: [{ url: "${registry.url}" }] }
`
  const app = await startApp(t, { yaml, deps: { now: () => clock.now } })
  return { url: app.url, registry, clock, app }
}

/** A JSON response body. */
function json(body: Buffer): Record<string, unknown> {
  return JSON.parse(body.toString()) as Record<string, unknown>
}

function pulls(app: Setup['app']) {
  return app.logs.lines.filter((l) => l.msg === 'pull')
}

t.test(
  'a manifest by tag is fetched once, then served from the cache with full headers',
  async (t) => {
    const { url, registry, app } = await setup(t)
    const pushed = await pushManifest(registry, 'library/busybox', 'latest')
    const first = await get(`${url}/v2/busybox/manifests/latest`, {
      headers: { accept: DOCKER_ACCEPT },
    })
    t.equal(first.status, 200)
    t.ok(first.body.equals(pushed.body), 'the exact bytes the registry holds')
    t.equal(first.headers['content-type'], OCI_MANIFEST)
    t.equal(first.headers['docker-content-digest'], pushed.digest)
    t.equal(first.headers['content-length'], String(pushed.body.length))
    t.equal(first.headers['docker-distribution-api-version'], 'registry/2.0')
    const second = await get(`${url}/v2/library/busybox/manifests/latest`, {
      headers: {
        accept: DOCKER_ACCEPT,
      },
    })
    t.ok(second.body.equals(pushed.body))
    const head = await get(`${url}/v2/busybox/manifests/latest`, {
      headers: { accept: DOCKER_ACCEPT },
      method: 'HEAD',
    })
    t.equal(head.status, 200)
    t.equal(head.body.length, 0)
    t.equal(head.headers['docker-content-digest'], pushed.digest)
    t.equal(head.headers['content-length'], String(pushed.body.length))
    t.equal(head.headers['content-type'], OCI_MANIFEST)
    t.match(pulls(app), [
      {
        registry: 'docker.io',
        repository: 'library/busybox',
        reference: 'latest',
        cache: 'miss',
        digest: pushed.digest,
        action: 'get',
      },
      { cache: 'hit', action: 'get', bytes: pushed.body.length },
      { cache: 'hit', action: 'head', bytes: 0 },
    ])
    t.equal(
      await metricValue(app.app.deps.metrics.cacheRequests, {
        protocol: 'docker',
        pool: 'docker.io',
        result: 'hit',
      }),
      2,
    )
  },
)

t.test('a manifest by digest is served and verified, then from the cache', async (t) => {
  const { url, registry, app } = await setup(t)
  const pushed = await pushManifest(registry, 'library/alpine', 'v1', {
    mediaType: DOCKER_MANIFEST,
  })
  for (let i = 0; i < 2; i++) {
    const res = await get(`${url}/v2/alpine/manifests/${pushed.digest}`)
    t.equal(res.status, 200)
    t.equal(res.headers['content-type'], DOCKER_MANIFEST)
    t.equal(digestOf(res.body), pushed.digest)
  }
  t.match(pulls(app), [{ cache: 'miss' }, { cache: 'hit' }])
})

t.test('all four manifest media types come through with their own Content-Type', async (t) => {
  const { url, registry } = await setup(t)
  const oci = await pushIndex(registry, 'org/multi', 'oci', { mediaType: OCI_INDEX })
  const list = await pushIndex(registry, 'org/multi', 'list', { mediaType: DOCKER_LIST })
  for (const [tag, pushed] of [
    ['oci', oci],
    ['list', list],
    ['oci-linux-amd64', oci.manifests[0]],
    ['list-linux-arm64', list.manifests[1]],
  ] as const) {
    const res = await get(`${url}/v2/org/multi/manifests/${tag}`, {
      headers: { accept: DOCKER_ACCEPT },
    })
    t.equal(res.status, 200, tag)
    t.equal(res.headers['content-type'], pushed?.mediaType, tag)
    t.equal(res.headers['docker-content-digest'], pushed?.digest, tag)
  }
})

t.test('a cached manifest is served only to clients that accept its media type', async (t) => {
  const { url, registry, app } = await setup(t)
  const list = await pushIndex(registry, 'org/app', 'list', { mediaType: DOCKER_LIST })
  const index = await pushIndex(registry, 'org/app', 'oci', { mediaType: OCI_INDEX })
  for (const tag of ['list', 'oci'])
    await get(`${url}/v2/org/app/manifests/${tag}`, { headers: { accept: DOCKER_ACCEPT } })
  // A schema2-only client never gets the cached list or index: the upstream is asked with its
  // Accept. Distribution answers a Docker list with its linux/amd64 manifest, an OCI index with 404.
  const narrow = await get(`${url}/v2/org/app/manifests/list`, {
    headers: { accept: DOCKER_MANIFEST },
  })
  t.equal(narrow.status, 200)
  t.equal(narrow.headers['content-type'], DOCKER_MANIFEST)
  t.equal(narrow.headers['docker-content-digest'], list.manifests[0]?.digest)
  const none = await get(`${url}/v2/org/app/manifests/oci`, {
    headers: { accept: DOCKER_MANIFEST },
  })
  t.equal(none.status, 404)
  t.match(JSON.parse(none.body.toString()), { errors: [{ code: 'MANIFEST_UNKNOWN' }] })
  t.same(
    pulls(app).map((p) => p.cache),
    ['miss', 'miss', 'miss'],
    'the narrow requests went upstream',
  )
  // ... and the canonical answers stay the list and the index for everyone else.
  const again = await get(`${url}/v2/org/app/manifests/list`, {
    headers: { accept: DOCKER_ACCEPT },
  })
  t.equal(again.headers['docker-content-digest'], list.digest)
  const index2 = await get(`${url}/v2/org/app/manifests/oci`)
  t.equal(index2.headers['docker-content-digest'], index.digest)
  t.same(
    pulls(app)
      .slice(3)
      .map((p) => p.cache),
    ['hit', 'hit'],
  )
})

t.test('after tagTTL the tag is revalidated with a HEAD, and a moved tag is fetched', async (t) => {
  const { url, registry, clock, app } = await setup(t)
  const v1 = await pushManifest(registry, 'library/redis', 'latest')
  await get(`${url}/v2/redis/manifests/latest`)
  clock.now += TAG_TTL_MS + 1
  const same = await get(`${url}/v2/redis/manifests/latest`)
  t.equal(same.headers['docker-content-digest'], v1.digest)
  const fresh = await get(`${url}/v2/redis/manifests/latest`)
  t.equal(fresh.headers['docker-content-digest'], v1.digest)
  const v2 = await pushManifest(registry, 'library/redis', 'latest')
  t.equal(
    (await get(`${url}/v2/redis/manifests/latest`)).headers['docker-content-digest'],
    v1.digest,
    'within the TTL the cached tag holds',
  )
  clock.now += TAG_TTL_MS + 1
  const moved = await get(`${url}/v2/redis/manifests/latest`)
  t.equal(moved.headers['docker-content-digest'], v2.digest)
  t.ok(moved.body.equals(v2.body))
  t.same(
    pulls(app).map((p) => p.cache),
    ['miss', 'revalidated', 'hit', 'hit', 'miss'],
  )
})

t.test(
  'a tag whose upstreams all fail is served stale; without a cached copy the answer is 503',
  async (t) => {
    const { url, registry, clock, app } = await setup(t)
    const pushed = await pushManifest(registry, 'library/nginx', 'latest')
    await get(`${url}/v2/nginx/manifests/latest`)
    await registry.stop()
    clock.now += TAG_TTL_MS + 1
    const stale = await get(`${url}/v2/nginx/manifests/latest`)
    t.equal(stale.status, 200)
    t.equal(stale.headers['docker-content-digest'], pushed.digest)
    t.ok(stale.body.equals(pushed.body))
    const byDigest = await get(`${url}/v2/nginx/manifests/${pushed.digest}`)
    t.equal(byDigest.status, 200)
    const unknown = await get(`${url}/v2/nginx/manifests/other`)
    t.equal(unknown.status, 503)
    t.match(JSON.parse(unknown.body.toString()), {
      errors: [{ code: 'UNAVAILABLE', detail: { registry: 'docker.io' } }],
    })
    t.match(
      pulls(app).map((p) => p.cache),
      ['miss', 'stale', 'hit'],
    )
    t.match(app.logs.raw.join('\n'), /serving the cached manifest stale/)
  },
)

t.test(
  'a manifest that does not match the upstream digest is refused and the next mirror asked',
  async (t) => {
    const bad = await fakeUpstream(t)
    const { url, registry, app } = await setup(t, { before: [bad] })
    const pushed = await pushManifest(registry, 'library/debian', 'latest', {
      mediaType: DOCKER_MANIFEST,
    })
    const tampered = Buffer.from(
      pushed.body.toString().replace('"schemaVersion":2', '"schemaVersion": 2'),
    )
    bad.handle((_req, res) => {
      res.writeHead(200, {
        'content-type': DOCKER_MANIFEST,
        'docker-content-digest': pushed.digest,
      })
      res.end(tampered)
    })
    const byTag = await get(`${url}/v2/debian/manifests/latest`)
    t.equal(byTag.status, 200)
    t.equal(digestOf(byTag.body), pushed.digest)
    t.equal(bad.count('/v2/library/debian/manifests/latest'), 1)
    t.equal(
      await metricValue(app.app.deps.metrics.digestMismatches, {
        pool: 'docker.io',
        upstream: bad.url,
      }),
      1,
    )
  },
)

t.test('manifests over 4 MiB are refused', async (t) => {
  const big = await fakeUpstream(t, (_req, res) => {
    res.writeHead(200, { 'content-type': OCI_MANIFEST })
    res.end(Buffer.alloc(4 * 1024 * 1024 + 1, 32))
  })
  const { url } = await setup(t, { before: [big] })
  const res = await get(`${url}/v2/library/huge/manifests/latest`)
  t.equal(res.status, 502)
  t.match(JSON.parse(res.body.toString()), { errors: [{ code: 'MANIFEST_INVALID' }] })
})

t.test('a tag unknown upstream answers MANIFEST_UNKNOWN', async (t) => {
  const { url, registry } = await setup(t)
  await pushManifest(registry, 'library/busybox', 'latest')
  const res = await get(`${url}/v2/busybox/manifests/nope`)
  t.equal(res.status, 404)
  t.match(JSON.parse(res.body.toString()), { errors: [{ code: 'MANIFEST_UNKNOWN' }] })
})

t.test('tags/list is paginated with n, last and a Link header', async (t) => {
  const { url, registry } = await setup(t)
  for (const tag of ['b', 'a', 'd', 'c', 'e'])
    await pushManifest(registry, 'library/tagged', tag, { layers: 1 })
  const all = await get(`${url}/v2/tagged/tags/list`)
  t.same(JSON.parse(all.body.toString()), { name: 'tagged', tags: ['a', 'b', 'c', 'd', 'e'] })
  const first = await get(`${url}/v2/tagged/tags/list?n=2`)
  t.same(json(first.body).tags, ['a', 'b'])
  t.equal(first.headers.link, '</v2/tagged/tags/list?n=2&last=b>; rel="next"')
  const next = await get(`${url}/v2/tagged/tags/list?n=2&last=b`)
  t.same(json(next.body).tags, ['c', 'd'])
  const last = await get(`${url}/v2/tagged/tags/list?n=2&last=d`)
  t.same(json(last.body).tags, ['e'])
  t.equal(last.headers.link, undefined)
  const bad = await get(`${url}/v2/tagged/tags/list?n=-1`)
  t.equal(bad.status, 400)
  const unknown = await get(`${url}/v2/nothing-here/tags/list`)
  t.equal(unknown.status, 404)
  t.match(JSON.parse(unknown.body.toString()), { errors: [{ code: 'NAME_UNKNOWN' }] })
})

t.test('_catalog lists the repositories the cache holds, as clients name them', async (t) => {
  const { url, registry } = await setup(t)
  await pushManifest(registry, 'library/busybox', 'latest')
  await pushManifest(registry, 'org/tool', 'v1')
  await get(`${url}/v2/busybox/manifests/latest`)
  await get(`${url}/v2/ghcr.io/org/tool/manifests/v1`)
  const res = await get(`${url}/v2/_catalog`)
  t.same(JSON.parse(res.body.toString()), { repositories: ['ghcr.io/org/tool', 'library/busybox'] })
  const page = await get(`${url}/v2/_catalog?n=1`)
  t.same(json(page.body).repositories, ['ghcr.io/org/tool'])
  t.equal(page.headers.link, '</v2/_catalog?n=1&last=ghcr.io%2Forg%2Ftool>; rel="next"')
})

t.test('referrers are passed through from an upstream that has them, 404 otherwise', async (t) => {
  const digest = `sha256:${'a'.repeat(64)}`
  const index = Buffer.from(
    JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [] }),
  )
  const upstream = await fakeUpstream(t, (req, res) => {
    if (req.url?.includes('/referrers/')) {
      res.writeHead(200, { 'content-type': OCI_INDEX, 'oci-filters-applied': 'artifactType' })
      res.end(index)
    } else res.writeHead(404).end()
  })
  const { url } = await setup(t, { before: [upstream] })
  const res = await get(`${url}/v2/library/x/referrers/${digest}?artifactType=application%2Fspdx`)
  t.equal(res.status, 200)
  t.ok(res.body.equals(index))
  t.equal(res.headers['content-type'], OCI_INDEX)
  t.equal(res.headers['oci-filters-applied'], 'artifactType')
  t.match(
    upstream.requests.at(-1)?.url,
    `/v2/library/x/referrers/${digest}?artifactType=application%2Fspdx`,
  )
  // Distribution 2.8 (the real upstream) has no referrers API: its 404 reaches the client.
  upstream.handle((_req, res) => res.writeHead(404).end())
  const missing = await get(`${url}/v2/library/x/referrers/${digest}`)
  t.equal(missing.status, 404)
})

t.test('concurrent requests for one cold tag share one upstream request', async (t) => {
  const manifest = Buffer.from(
    JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: {}, layers: [] }),
  )
  let release: () => void = () => undefined
  const released = new Promise<void>((resolve) => (release = resolve))
  // Fault injection: a slow upstream, so every request arrives while the first is in flight.
  const slow = await fakeUpstream(t, async (_req, res) => {
    await released
    res.writeHead(200, {
      'content-type': OCI_MANIFEST,
      'docker-content-digest': digestOf(manifest),
    })
    res.end(manifest)
  })
  const { url, app } = await setup(t, { before: [slow] })
  const requests = Array.from({ length: 20 }, () => get(`${url}/v2/library/slow/manifests/v1`))
  // Hold the upstream until all 20 clients are connected and their requests parsed.
  const connections = () =>
    new Promise<number>((resolve, reject) =>
      app.app.server.getConnections((error, count) => (error ? reject(error) : resolve(count))),
    )
  while (slow.count() < 1 || (await connections()) < 20) await new Promise((r) => setTimeout(r, 10))
  await new Promise((r) => setTimeout(r, 100))
  release()
  const answers = await Promise.all(requests)
  t.ok(answers.every((a) => a.status === 200 && a.body.equals(manifest)))
  t.equal(slow.count('/v2/library/slow/manifests/v1'), 1)
})

t.test('a stored manifest that rotted on disk is refetched after a restart', async (t) => {
  const first = await setup(t)
  const pushed = await pushManifest(first.registry, 'library/rot', 'latest')
  await get(`${first.url}/v2/rot/manifests/latest`)
  await first.app.app.close()
  const hex = pushed.digest.slice('sha256:'.length)
  const file = join(first.app.storagePath, 'blobs', 'sha256', hex.slice(0, 2), hex)
  await writeFile(file, Buffer.from(pushed.body.toString().replace('2', '3')))
  const second = await startApp(t, {
    yaml: `docker: { registries: [{ name: docker.io, default: true, upstreams: [{ url: "${first.registry.url}" }] }] }\n`,
    env: { PULLTHROUGH_STORAGE_PATH: first.app.storagePath },
  })
  const res = await get(`${second.url}/v2/rot/manifests/${pushed.digest}`)
  t.equal(res.status, 200)
  t.ok(res.body.equals(pushed.body), 'the good bytes, from the upstream')
  t.equal(
    await metricValue(second.app.deps.metrics.storageCorruptions),
    1,
    'the rotten copy was counted',
  )
  t.equal(
    await metricValue(second.app.deps.metrics.digestMismatches),
    0,
    'not as an upstream mismatch',
  )
  t.ok((await readFile(file)).equals(pushed.body), 'and replaced on disk')
})
