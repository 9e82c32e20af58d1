/**
 * The tag cache against a real registry: no Accept header bypasses it, tags
 * that do not exist are remembered in memory only, and single flights by
 * digest are per registry and repository. A relay in front of the registry
 * counts which requests reach it.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import t, { type Test } from 'tap'
import { request } from 'undici'
import { UNKNOWN_TAG_TTL_MS } from '../../src/cache/manifests.ts'
import { DEFAULT_ACCEPT } from '../../src/docker/media-types.ts'
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
import { startRegistry, type TestRegistry } from '../helpers/registry.ts'
import { get } from '../helpers/http.ts'

/** What dockerd sends when it pulls: every manifest type. */
const DOCKER_ACCEPT = [DOCKER_MANIFEST, DOCKER_LIST, OCI_MANIFEST, OCI_INDEX].join(', ')
const TAG_TTL_MS = 60_000
/** How long the relay holds a 404 for repositories under `slow/`: a tarpit registry. */
const SLOW_404_MS = 1500

/**
 * Passes every request on to the registry and its answer back, and records it;
 * answers for repositories under `slow/` are held SLOW_404_MS first. When the
 * registry is down the client's connection is dropped, like the registry's own.
 */
async function relay(t: Test, registry: TestRegistry): Promise<FakeUpstream> {
  return fakeUpstream(t, async (req, res) => {
    const headers: Record<string, string> = {}
    for (const name of ['accept', 'authorization'])
      if (typeof req.headers[name] === 'string') headers[name] = req.headers[name]
    let answer
    try {
      answer = await request(`${registry.url}${req.url ?? '/'}`, {
        method: req.method === 'HEAD' ? 'HEAD' : 'GET',
        headers,
      })
    } catch {
      res.destroy()
      return
    }
    const body = Buffer.from(await answer.body.arrayBuffer())
    if (req.url?.startsWith('/v2/slow/')) await sleep(SLOW_404_MS)
    const out: Record<string, string> = {}
    for (const [name, value] of Object.entries(answer.headers))
      if (typeof value === 'string' && name !== 'transfer-encoding') out[name] = value
    res.writeHead(answer.statusCode, out).end(req.method === 'HEAD' ? undefined : body)
  })
}

interface Setup {
  readonly url: string
  readonly registry: TestRegistry
  readonly upstream: FakeUpstream
  readonly clock: { now: number }
  readonly app: Awaited<ReturnType<typeof startApp>>
}

/** pullthrough -> relay -> real registry, plus `extra` registries, with a clock the test moves. */
async function setup(t: Test, extra = ''): Promise<Setup> {
  const registry = await startRegistry(t)
  const upstream = await relay(t, registry)
  const clock = { now: Date.now() }
  const app = await startApp(t, {
    yaml: `docker:
  registries:
    - name: docker.io
      default: true
      tagTTL: ${TAG_TTL_MS}ms
      upstreams: [{ url: "${upstream.url}" }]
      retry: { attempts: 1 }
      breaker: { failures: 100 }
${extra}`,
    deps: { now: () => clock.now },
  })
  return { url: app.url, registry, upstream, clock, app }
}

/** Requests that reached the registry for `path`, by method and the Accept they carried. */
function reached(upstream: FakeUpstream, path: string, method: string, accept: string): number {
  return upstream.requests.filter(
    (r) => r.url === path && r.method === method && r.headers.accept === accept,
  ).length
}

t.test(
  'schema2-only clients of a multi-arch tag cost one upstream request per tagTTL, and get stale answers',
  async (t) => {
    const { url, registry, upstream, clock, app } = await setup(t)
    const list = await pushIndex(registry, 'library/multi', 'latest', { mediaType: DOCKER_LIST })
    const amd64 = list.manifests[0]
    const path = '/v2/library/multi/manifests/latest'
    const canonical = await get(`${url}/v2/multi/manifests/latest`, {
      headers: { accept: DOCKER_ACCEPT },
    })
    t.equal(canonical.headers['docker-content-digest'], list.digest)

    // Spellings of one Accept: parameters, an extra non-manifest type, case.
    const spellings = [
      DOCKER_MANIFEST,
      `${DOCKER_MANIFEST};q=0.9`,
      `${DOCKER_MANIFEST}, application/json`,
      DOCKER_MANIFEST.toUpperCase(),
    ]
    const accept = (i: number) => spellings[i % spellings.length] ?? DOCKER_MANIFEST
    const concurrent = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        get(`${url}/v2/multi/manifests/latest`, { headers: { accept: accept(i) } }),
      ),
    )
    const sequential = []
    for (let i = 0; i < 10; i++)
      sequential.push(
        await get(`${url}/v2/multi/manifests/latest`, { headers: { accept: accept(i) } }),
      )
    for (const answer of [...concurrent, ...sequential]) {
      // What Distribution (and Docker Hub) answer a schema2-only client: the linux/amd64 manifest.
      t.equal(answer.status, 200)
      t.equal(answer.headers['content-type'], DOCKER_MANIFEST)
      t.equal(answer.headers['docker-content-digest'], amd64?.digest)
    }
    t.equal(reached(upstream, path, 'GET', DEFAULT_ACCEPT), 1, 'one canonical GET')
    t.equal(
      reached(upstream, path, 'GET', DOCKER_MANIFEST),
      1,
      'one GET for 20 schema2-only requests, the Accept normalised',
    )
    t.equal(
      upstream.requests.filter((r) => r.url === path).length,
      2,
      'nothing else reached the registry for the tag',
    )
    t.equal(
      (await get(`${url}/v2/multi/manifests/latest`, { headers: { accept: DOCKER_ACCEPT } }))
        .headers['docker-content-digest'],
      list.digest,
      'the canonical answer is still the list',
    )

    clock.now += TAG_TTL_MS + 1
    const revalidated = await get(`${url}/v2/multi/manifests/latest`, {
      headers: { accept: DOCKER_MANIFEST },
    })
    t.equal(revalidated.headers['docker-content-digest'], amd64?.digest)
    t.equal(reached(upstream, path, 'HEAD', DOCKER_MANIFEST), 1, 'after tagTTL: one HEAD')
    t.equal(reached(upstream, path, 'GET', DOCKER_MANIFEST), 1, 'and no GET')

    await registry.stop()
    clock.now += TAG_TTL_MS + 1
    const stale = await get(`${url}/v2/multi/manifests/latest`, {
      headers: { accept: DOCKER_MANIFEST },
    })
    t.equal(stale.status, 200, 'every upstream down: served stale')
    t.equal(stale.headers['docker-content-digest'], amd64?.digest)
    t.ok(stale.body.equals(amd64?.body ?? Buffer.alloc(0)))
    const caches = app.logs.lines.filter((l) => l.msg === 'pull').map((l) => l.cache)
    t.same(caches.slice(-2), ['revalidated', 'stale'])
  },
)

t.test(
  'a schema2-only client of a single schema2 image is served the canonical record',
  async (t) => {
    const { url, registry, upstream, clock } = await setup(t)
    const image = await pushManifest(registry, 'library/single', 'v1', {
      mediaType: DOCKER_MANIFEST,
    })
    await get(`${url}/v2/single/manifests/v1`, { headers: { accept: DOCKER_ACCEPT } })
    for (let i = 0; i < 5; i++) {
      const res = await get(`${url}/v2/single/manifests/v1`, {
        headers: { accept: DOCKER_MANIFEST },
      })
      t.equal(res.headers['docker-content-digest'], image.digest)
    }
    t.equal(upstream.count('/v2/library/single/manifests/v1'), 1)
    // Stale canonical record, registry down, no record of its own: still served, stale.
    await registry.stop()
    clock.now += TAG_TTL_MS + 1
    const stale = await get(`${url}/v2/single/manifests/v1`, {
      headers: { accept: DOCKER_MANIFEST },
    })
    t.equal(stale.status, 200)
    t.equal(stale.headers['docker-content-digest'], image.digest)
  },
)

t.test('a client that accepts no manifest type is refused without asking upstream', async (t) => {
  const { url, registry, upstream } = await setup(t)
  await pushManifest(registry, 'library/plain', 'v1')
  for (let i = 0; i < 3; i++) {
    const res = await get(`${url}/v2/plain/manifests/v1`, {
      headers: { accept: 'application/json' },
    })
    t.equal(res.status, 404)
    t.match(JSON.parse(res.body.toString()), { errors: [{ code: 'MANIFEST_UNKNOWN' }] })
  }
  t.equal(upstream.count('/v2/library/plain/manifests/'), 0)
})

t.test(
  'unknown tags, and an OCI index a schema2-only client cannot read, are remembered in memory',
  async (t) => {
    const { url, registry, upstream, clock, app } = await setup(t)
    await pushIndex(registry, 'library/oci', 'latest', { mediaType: OCI_INDEX })
    for (let i = 0; i < 5; i++) {
      t.equal((await get(`${url}/v2/oci/manifests/nope`)).status, 404)
      // Distribution's answer: "OCI index found, but accept header does not support OCI indexes".
      t.equal(
        (await get(`${url}/v2/oci/manifests/latest`, { headers: { accept: DOCKER_MANIFEST } }))
          .status,
        404,
      )
    }
    t.equal(upstream.count('/v2/library/oci/manifests/nope'), 1, 'an unknown tag: asked once')
    t.equal(upstream.count('/v2/library/oci/manifests/latest'), 1, 'the narrow 404: asked once')
    const metadata = app.app.deps.metadata
    t.equal(await metadata.getTag('docker.io', 'library/oci', 'nope'), undefined, 'no record')
    t.same(await metadata.listRepositories('docker.io'), [], 'no repository recorded either')
    clock.now += UNKNOWN_TAG_TTL_MS + 1
    t.equal((await get(`${url}/v2/oci/manifests/nope`)).status, 404)
    t.equal(upstream.count('/v2/library/oci/manifests/nope'), 2, 'asked again after the TTL')
  },
)

t.test(
  "a registry or repository that answers 404 slowly does not fail another's pull of the same digest",
  async (t) => {
    const tarpit = await fakeUpstream(t, async (_req, res) => {
      await sleep(SLOW_404_MS)
      res.writeHead(404, { 'content-type': 'application/json' }).end('{"errors":[]}')
    })
    const { url, registry, upstream } = await setup(
      t,
      `    - { name: other.example, upstreams: [{ url: "${tarpit.url}" }], retry: { attempts: 1 } }\n`,
    )
    for (const attack of [
      (digest: string) => `${url}/v2/anything/here/manifests/${digest}?ns=other.example`,
      (digest: string) => `${url}/v2/slow/repo/manifests/${digest}`,
    ]) {
      const { digest } = await pushManifest(registry, 'library/app', `v${Math.random()}`)
      const attacker = get(attack(digest))
      await sleep(200)
      const legit = await get(`${url}/v2/library/app/manifests/${digest}`)
      t.equal(legit.status, 200, `not failed by ${new URL(attack(digest)).pathname}`)
      t.equal(legit.headers['docker-content-digest'], digest)
      t.equal(upstream.count(`/v2/library/app/manifests/${digest}`), 1, 'its registry was asked')
      t.equal((await attacker).status, 404, 'the attacker gets its own 404')
    }
  },
)
