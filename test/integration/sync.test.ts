/**
 * Sync lists against real parts: a CNCF Distribution registry and a PyPI-shaped
 * index upstream, runs started through the admin API and by the schedule.
 * A run fetches what the list names before any client asks; the next run
 * fetches only what moved upstream; pinned content follows the list; failures
 * back off; replicas sharing Redis run a scheduled list once.
 */
import { stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import t, { type Test } from 'tap'
import { request } from 'undici'
import { startApp, type TestApp } from '../helpers/app.ts'
import { cleanEnv, runCli } from '../helpers/cli.ts'
import { tempDir } from '../helpers/config.ts'
import { freePort } from '../helpers/free-port.ts'
import { get, metricSum } from '../helpers/http.ts'
import { buildImage, type BuiltImage } from '../helpers/images.ts'
import { pip } from '../helpers/pypi-packages.ts'
import { indexYaml, startPypiUpstream } from '../helpers/pypi-upstream.ts'
import { startRedis } from '../helpers/redis-server.ts'
import { startRegistry } from '../helpers/registry.ts'

const TOKEN = 'sync-test-admin-token-00001'
/** A run of a few small images or files finishes well within this. */
const RUN_MS = 60_000

interface ListStatus {
  name: string
  running: boolean
  run: {
    trigger: string
    new: number
    updated: number
    unchanged: number
    failed: number
    bytes: number
    items: { name: string; state: string; bytes: number; error?: string }[]
    error: string | null
  } | null
  last: { finishedAt: number; failures: { name: string; error: string }[] } | null
  nextDue: number | null
}

async function api(app: TestApp, method: 'GET' | 'POST', path: string, body?: unknown) {
  const res = await request(`${app.url}/-/api/v1${path}`, {
    method,
    headers: {
      authorization: `Bearer ${TOKEN}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  })
  return {
    status: res.statusCode,
    json: (await res.body.json()) as { items: ListStatus[] } & Record<string, unknown>,
  }
}

/** Starts the list through the API and waits until it has finished. */
async function syncNow(
  t: Test,
  app: TestApp,
  list: string,
): Promise<NonNullable<ListStatus['run']>> {
  const started = await api(app, 'POST', '/sync', { lists: [list] })
  t.equal(started.status, 202, `sync ${list} accepted`)
  const deadline = Date.now() + RUN_MS
  for (;;) {
    const [status] = (await api(app, 'GET', `/sync?list=${list}`)).json.items
    if (status && !status.running && status.run) {
      t.equal(status.run.error, null, 'the run went to its end')
      return status.run
    }
    if (Date.now() > deadline) throw new Error(`sync ${list} did not finish`)
    await sleep(50)
  }
}

/** Bytes of an image's blobs (configs and layers) for the platforms given (all by default). */
async function blobBytes(image: BuiltImage, platforms?: string[]): Promise<number> {
  let bytes = 0
  for (const m of image.manifests) {
    const p = `${m.platform.os}/${m.platform.architecture}`
    if (platforms && !platforms.includes(p)) continue
    bytes += (await stat(join(image.dir, 'blobs', 'sha256', m.config.slice(7)))).size
    for (const layer of m.layers) bytes += layer.size
  }
  return bytes
}

async function pins(app: TestApp): Promise<string[]> {
  return (await api(app, 'GET', '/pins')).json.items as unknown as string[]
}

t.test('an image list: fetched ahead, platforms filtered, then only what moved', async (t) => {
  const registry = await startRegistry(t)
  const dir = await tempDir(t, 'pt-sync-img-')
  const app1 = await buildImage(join(dir, 'app1'), { layers: [3000, 5000] })
  const multi = await buildImage(join(dir, 'multi'), {
    layers: [2000],
    platforms: [
      { os: 'linux', architecture: 'amd64' },
      { os: 'linux', architecture: 'arm64' },
    ],
  })
  const ver = await buildImage(join(dir, 'ver'), { layers: [1000] })
  await registry.pushImage(app1, 'library/app:1.0')
  await registry.pushImage(multi, 'library/multi:2.0')
  for (const tag of ['1.0', '1.1', '2.0', 'edge'])
    await registry.pushImage(ver, `library/ver:${tag}`)

  const app = await startApp(t, {
    yaml: `docker:
  registries:
    - { name: docker.io, default: true, tagTTL: 1h, upstreams: [{ url: "${registry.url}" }] }
admin: { token: "${TOKEN}" }
sync:
  - name: base
    pin: true
    images:
      - { repository: app, tags: ["1.0"] }
      - { repository: multi, tags: ["2.0"], platforms: [linux/arm64] }
      - { repository: ver, semver: ">=1.1" }
`,
  })
  const arm64 = multi.manifests.find((m) => m.platform.architecture === 'arm64')!
  const amd64 = multi.manifests.find((m) => m.platform.architecture === 'amd64')!

  const first = await syncNow(t, app, 'base')
  t.same(
    first.items.map((i) => `${i.name} ${i.state}`).sort(),
    [
      'docker.io/library/app:1.0 new',
      'docker.io/library/multi:2.0 new',
      'docker.io/library/ver:1.1 new',
      'docker.io/library/ver:2.0 new',
    ],
    'the literal tags, and the versions in the range (not 1.0, not edge)',
  )
  t.equal(
    first.bytes,
    (await blobBytes(app1)) + (await blobBytes(multi, ['linux/arm64'])) + (await blobBytes(ver)),
    'every wanted blob fetched once; amd64 left out',
  )
  const pinned = await pins(app)
  t.ok(pinned.includes(app1.digest) && pinned.includes(arm64.digest), 'the manifests are pinned')
  t.ok(pinned.includes(arm64.layers[0]!.digest), 'and the layers')
  t.notOk(pinned.includes(amd64.digest), 'not what the list does not want')

  // The upstream is gone: what the list named is served, what it left out is not.
  await registry.stop()
  const child = await get(`${app.url}/v2/multi/manifests/${arm64.digest}`)
  t.equal(child.status, 200, 'the arm64 manifest is cached')
  const layer = await get(`${app.url}/v2/multi/blobs/${arm64.layers[0]!.digest}`)
  t.equal(layer.status, 200, 'and its layer')
  t.not(
    (await get(`${app.url}/v2/multi/manifests/${amd64.digest}`)).status,
    200,
    'amd64 was never fetched',
  )
  await registry.start()

  // The tag moves upstream: the next run fetches the new image only.
  const app2 = await buildImage(join(dir, 'app2'), { layers: [4000] })
  await registry.pushImage(app2, 'library/app:1.0')
  const second = await syncNow(t, app, 'base')
  t.same(second.items.map((i) => `${i.name} ${i.state}`).sort(), [
    'docker.io/library/app:1.0 updated',
    'docker.io/library/multi:2.0 unchanged',
    'docker.io/library/ver:1.1 unchanged',
    'docker.io/library/ver:2.0 unchanged',
  ])
  t.equal(second.bytes, await blobBytes(app2), 'only the moved tag’s new blobs were fetched')
  const served = await get(`${app.url}/v2/app/manifests/1.0`, {
    headers: { accept: app2.mediaType },
  })
  t.equal(
    served.headers['docker-content-digest'],
    app2.digest,
    'clients get the new tag at once, tagTTL an hour away',
  )
  const repinned = await pins(app)
  t.ok(repinned.includes(app2.digest), 'the new manifest is pinned')
  t.notOk(repinned.includes(app1.digest), 'the one the list no longer wants is unpinned')
  t.ok(repinned.includes(arm64.digest), 'unchanged content stays pinned')
  t.equal(await metricSum(app.url, 'pullthrough_sync_items_total{list="base",result="updated"}'), 1)
})

t.test('the schedule: a tag moved upstream is picked up by the next scheduled run', async (t) => {
  const registry = await startRegistry(t)
  const dir = await tempDir(t, 'pt-sync-sched-')
  const v1 = await buildImage(join(dir, 'v1'), { layers: [3000, 5000] })
  await registry.pushImage(v1, 'library/app:1.0')
  let clock = Date.now()
  const app = await startApp(t, {
    deps: { now: () => clock },
    yaml: `docker:
  registries:
    - { name: docker.io, default: true, tagTTL: 1h, upstreams: [{ url: "${registry.url}" }] }
admin: { token: "${TOKEN}" }
sync:
  - name: nightly
    schedule: 6h
    images: [{ repository: app, tags: ["1.0"] }]
`,
  })
  const status = async () => (await api(app, 'GET', '/sync?list=nightly')).json.items[0]!
  /** Waits for the scheduled run that finishes after `after`. */
  const scheduledRun = async (after: number) => {
    const deadline = Date.now() + RUN_MS
    for (;;) {
      const s = await status()
      if (!s.running && s.last && s.last.finishedAt > after) return s
      if (Date.now() > deadline) throw new Error('no scheduled run')
      await sleep(50)
    }
  }
  app.app.services.sync.startSchedule(100)
  const first = await scheduledRun(0)
  t.equal(first.run?.trigger, 'schedule', 'a list that never ran runs at the first check')
  t.equal(first.run?.new, 1)
  t.equal(first.nextDue, first.last!.finishedAt + 6 * 3_600_000, 'next one six hours later')

  const v2 = await buildImage(join(dir, 'v2'), { layers: [4000] })
  await registry.pushImage(v2, 'library/app:1.0')
  clock += 5 * 3_600_000
  await sleep(500)
  t.equal((await status()).last!.finishedAt, first.last!.finishedAt, 'not due after five hours')

  clock += 3_600_000 + 1000
  const second = await scheduledRun(first.last!.finishedAt)
  t.equal(second.run?.trigger, 'schedule')
  t.same(
    second.run?.items.map((i) => `${i.name} ${i.state}`),
    ['docker.io/library/app:1.0 updated'],
    'the moved tag is picked up',
  )
  t.equal(second.run?.bytes, await blobBytes(v2), 'only the new blobs were fetched')
  const served = await get(`${app.url}/v2/app/manifests/1.0`, {
    headers: { accept: v2.mediaType },
  })
  t.equal(served.headers['docker-content-digest'], v2.digest, 'clients get the new tag')
})

t.test(
  'a package list and a requirements file: one conditional request per page when nothing moved',
  async (t) => {
    const upstream = await startPypiUpstream(t)
    const dir = await tempDir(t, 'pt-sync-py-')
    const requirements = join(dir, 'requirements.txt')
    await writeFile(requirements, '# pinned\nFancy_Name.Pkg==0.1\napp  # newest\n')
    const app = await startApp(t, {
      yaml: `${indexYaml([upstream])}admin: { token: "${TOKEN}" }
sync:
  - name: py
    packages:
      - { project: lib, versions: ">=1.0,<2" }
    requirements: ["${requirements}"]
`,
    })
    const { packages } = upstream
    const wanted = [
      ...packages.project('lib').files.filter((f) => f.version.startsWith('1.')),
      ...packages.project('app').files,
      ...packages.project('Fancy_Name.Pkg').files,
    ]
    const first = await syncNow(t, app, 'py')
    t.same(first.items.map((i) => `${i.name} ${i.state}`).sort(), [
      'pypi/app==1.0 new',
      'pypi/fancy-name-pkg==0.1 new',
      'pypi/lib==1.0 new',
      'pypi/lib==1.1 new',
    ])
    t.equal(
      first.bytes,
      wanted.reduce((sum, f) => sum + f.size, 0),
      'every file of the chosen versions',
    )

    const pages = upstream.count()
    const files = upstream.files.count()
    const second = await syncNow(t, app, 'py')
    t.same([second.new, second.unchanged, second.failed, second.bytes], [0, 4, 0, 0])
    t.equal(upstream.count() - pages, 3, 'one request per project page')
    t.equal(upstream.files.count() - files, 0, 'no file asked for again')

    // The CLI runs it too, and prints what the run did.
    const cli = await runCli(t, ['sync', 'py', '--url', app.url, '--token', TOKEN], {
      env: cleanEnv(),
    })
    t.equal(cli.code, 0, cli.stderr)
    t.match(cli.stdout, /list\s+new\s+updated\s+unchanged\s+failed\s+fetched/)
    t.match(cli.stdout, /py\s+0\s+0\s+4\s+0\s+0 B/)

    // Offline from the index: pip still installs what the list fetched.
    await upstream.stop()
    await upstream.files.stop()
    const target = await tempDir(t, 'pt-sync-pip-')
    const run = await pip(t, [
      'download',
      '--no-deps',
      '--dest',
      target,
      '--index-url',
      `${app.url}/pypi/pypi/simple/`,
      'lib==1.0',
    ])
    t.equal(run.code, 0, `pip download from the synced cache: ${run.stderr}`)
  },
)

t.test(
  'a failing upstream: retried with exponential backoff and jitter, then reported',
  async (t) => {
    const dead = await freePort()
    const pauses: number[] = []
    let releasePause: (() => void) | undefined
    let holdPauses = false
    const app = await startApp(t, {
      yaml: `docker:
  registries:
    - name: docker.io
      default: true
      upstreams: [{ url: "http://127.0.0.1:${dead}" }]
      retry: { attempts: 1 }
admin: { token: "${TOKEN}" }
sync:
  - name: gone
    images: [{ repository: app, tags: ["1.0"] }]
`,
      deps: {
        random: () => 0.5,
        pause: async (ms) => {
          pauses.push(ms)
          if (holdPauses) await new Promise<void>((resolve) => (releasePause = resolve))
        },
      },
    })
    const run = await syncNow(t, app, 'gone')
    t.same(pauses, [500, 1000, 2000], 'three pauses: half of 1 s, 2 s, 4 s with the jitter at 0.5')
    t.equal(run.failed, 1)
    t.match(run.items[0], { name: 'docker.io/library/app:1.0', state: 'failed', error: /upstream/ })
    const [status] = (await api(app, 'GET', '/sync?list=gone')).json.items
    t.equal(status!.last!.failures[0]!.name, 'docker.io/library/app:1.0', 'the failure is recorded')

    // While a run waits in its backoff, another start is refused.
    holdPauses = true
    t.equal((await api(app, 'POST', '/sync', { lists: ['gone'] })).status, 202)
    while (!releasePause) await sleep(10)
    const busy = await api(app, 'POST', '/sync', {})
    t.equal(busy.status, 409, 'the list is running')
    holdPauses = false
    releasePause()
    await app.app.services.sync.settled()

    const cli = await runCli(t, ['sync', '--url', app.url, '--token', TOKEN], { env: cleanEnv() })
    t.equal(cli.code, 1, 'a failed item fails the command')
    t.match(cli.stdout, /Failed in gone:\n {2}docker\.io\/library\/app:1\.0: /)
    const badName = await runCli(t, ['sync', 'Bad Name', '--url', app.url], { env: cleanEnv() })
    t.equal(badName.code, 2)
    t.equal(badName.stderr, 'pullthrough: "Bad Name" is not a sync list name\n')
    const noList = await runCli(t, ['sync', 'nope', '--url', app.url, '--token', TOKEN], {
      env: cleanEnv(),
    })
    t.equal(noList.code, 1)
    t.match(noList.stderr, /no sync list is named "nope"/)

    const unknown = await api(app, 'POST', '/sync', { lists: ['nope'] })
    t.equal(unknown.status, 400)
    t.match(unknown.json, { message: /no sync list is named "nope"/ })
    const anonymous = await request(`${app.url}/-/api/v1/sync`, { method: 'POST' })
    await anonymous.body.dump()
    t.equal(anonymous.statusCode, 401, 'starting a sync needs the admin token')
  },
)

t.test(
  'replicas sharing Redis run a scheduled list once; a dead holder is taken over',
  async (t) => {
    const registry = await startRegistry(t)
    const dir = await tempDir(t, 'pt-sync-ha-')
    await registry.pushImage(
      await buildImage(join(dir, 'img'), { layers: [1000] }),
      'library/app:1.0',
    )
    const redis = await startRedis(t)
    const yaml = `docker:
  registries:
    - { name: docker.io, default: true, upstreams: [{ url: "${registry.url}" }] }
metadata: { redis: { url: "${redis.url}" } }
admin: { token: "${TOKEN}" }
sync:
  - name: warm
    schedule: 1h
    images: [{ repository: app, tags: ["1.0"] }]
`
    const replicas = [await startApp(t, { yaml }), await startApp(t, { yaml })]
    // A replica that died holding the lease: it runs out in a second and a half.
    const held = await replicas[0]!.app.deps.metadata.acquireLease('sync:warm', 'dead-replica', {
      ttlMs: 1500,
    })
    t.ok(held)
    const started = () =>
      replicas.filter((r) => r.logs.lines.some((l) => l.msg === 'sync started')).length
    for (const r of replicas) r.app.services.sync.startSchedule(100)
    await sleep(800)
    t.equal(started(), 0, 'no replica runs the list while the lease is held')
    const deadline = Date.now() + RUN_MS
    let last: ListStatus['last'] = null
    while (!last && Date.now() < deadline) {
      await sleep(100)
      last = (await api(replicas[1]!, 'GET', '/sync?list=warm')).json.items[0]!.last
    }
    t.ok(last, 'the list ran once the lease ran out')
    await sleep(500)
    t.equal(started(), 1, 'exactly one replica ran it')
    let items = 0
    for (const r of replicas)
      items += await metricSum(r.url, 'pullthrough_sync_items_total{list="warm"')
    t.equal(items, 1, 'one item synced across both replicas')
    const [status] = (await api(replicas[0]!, 'GET', '/sync?list=warm')).json.items
    t.ok(
      status!.nextDue! >= last!.finishedAt + 3_600_000 - 1,
      'the next run is an hour after the last',
    )
  },
)
