/**
 * Offline mode with real clients: dockerd (registry-mirrors) and pip pull
 * through pullthrough, the cache goes offline through the admin API, the
 * registry stops and every tag and page ages past its TTL; the same pulls
 * then come from the cache with no upstream asked, a miss answers 503 saying
 * the cache is offline, and switching back online fetches again.
 */
import { join } from 'node:path'
import t from 'tap'
import { request } from 'undici'
import { startApp, type TestApp } from '../helpers/app.ts'
import { tempDir } from '../helpers/config.ts'
import { metricSum } from '../helpers/http.ts'
import { startDockerd } from '../helpers/dockerd.ts'
import { buildImage } from '../helpers/images.ts'
import { pipInstallThrough } from '../helpers/pypi-packages.ts'
import { indexYaml, startPypiUpstream } from '../helpers/pypi-upstream.ts'
import { startRegistry } from '../helpers/registry.ts'

const TOKEN = 'offline-test-admin-token-0123'
const HOUR_MS = 3_600_000

async function setOffline(app: TestApp, body: string, token: string | null = TOKEN) {
  const res = await request(`${app.url}/-/api/v1/offline`, {
    method: 'PUT',
    headers: {
      'content-type': 'application/json',
      ...(token === null ? {} : { authorization: `Bearer ${token}` }),
    },
    body,
  })
  return { status: res.statusCode, body: (await res.body.json()) as Record<string, unknown> }
}

/** Requests pullthrough has sent to any upstream so far, as its /metrics count them. */
const upstreamRequests = (app: TestApp) =>
  metricSum(app.url, 'pullthrough_upstream_request_duration_seconds_count')

async function metricLine(app: TestApp, name: string): Promise<string | undefined> {
  const text = await (await request(`${app.url}/metrics`)).body.text()
  return text.split('\n').find((line) => line.startsWith(`${name} `))
}

t.test('offline: docker pull and pip install come from the cache alone', async (t) => {
  const registry = await startRegistry(t)
  const image = await buildImage(join(await tempDir(t, 'pt-img-')), { layers: [4096], tag: 'v1' })
  const pushed = await registry.pushImage(image, 'library/offline-probe:v1')
  await registry.pushImage(image, 'library/never-pulled:v1')
  const index = await startPypiUpstream(t)
  let offset = 0
  const app = await startApp(t, {
    yaml: `docker:
  registries:
    - { name: docker.io, default: true, upstreams: [{ url: "${registry.url}" }] }
${indexYaml([index])}admin: { token: "${TOKEN}" }
`,
    deps: { now: () => Date.now() + offset },
  })
  const host = new URL(app.url).host
  const dockerd = await startDockerd(t, { registryMirrors: [app.url], insecureRegistries: [host] })
  const first = await dockerd.docker(['pull', 'offline-probe:v1'])
  t.equal(first.code, 0, first.stderr)
  const firstPip = await pipInstallThrough(t, app.url, ['app'])
  t.equal(firstPip.code, 0, firstPip.stderr)
  await app.app.services.cache.settled()

  t.match(await setOffline(app, '{"offline": true}', null), {
    status: 401,
    body: { error: 'PT_API_UNAUTHORIZED', message: String },
  })
  t.match(await setOffline(app, '{"offline": "yes"}'), {
    status: 400,
    body: { message: /"offline": true/ },
  })
  t.same(await setOffline(app, '{"offline": true}'), { status: 200, body: { offline: true } })
  t.equal(await metricLine(app, 'pullthrough_offline'), 'pullthrough_offline 1')
  const page = await request(`${app.url}/-/`, {
    headers: { authorization: `Basic ${Buffer.from(`admin:${TOKEN}`).toString('base64')}` },
  })
  t.match(await page.body.text(), /id="offline"[^>]*>offline: no upstream is contacted/)

  await registry.stop()
  offset = 2 * HOUR_MS // every tag and page is past its TTL: online, each would be revalidated
  const asked = await upstreamRequests(app)
  const indexAsked = index.count() + index.files.count()

  t.equal((await dockerd.docker(['rmi', 'offline-probe:v1'])).code, 0)
  const again = await dockerd.docker(['pull', 'offline-probe:v1'])
  t.equal(again.code, 0, again.stderr)
  t.match(again.stdout, `Digest: ${pushed.digest}`, 'the same image, from the cache')
  const againPip = await pipInstallThrough(t, app.url, ['app'])
  t.equal(againPip.code, 0, againPip.stderr)
  t.equal(await upstreamRequests(app), asked, 'no upstream was asked')
  t.equal(index.count() + index.files.count(), indexAsked, 'the index saw no request')

  const missing = await request(`${app.url}/v2/library/never-pulled/manifests/v1`)
  t.equal(missing.statusCode, 503)
  t.match(await missing.body.json(), {
    errors: [{ code: 'UNAVAILABLE', message: /offline/ }],
  })
  const project = await request(`${app.url}/simple/never-listed/`, {
    headers: { accept: 'application/vnd.pypi.simple.v1+json' },
  })
  t.equal(project.statusCode, 503)
  t.match(await project.body.json(), { message: /offline/ })
  t.equal(await upstreamRequests(app), asked, 'misses asked no upstream either')

  // Back online: the registry answers again, and so does the miss.
  await registry.start()
  t.same(await setOffline(app, '{"offline": false}'), { status: 200, body: { offline: false } })
  const online = await request(`${app.url}/v2/library/never-pulled/manifests/v1`, {
    headers: { accept: pushed.mediaType },
  })
  await online.body.dump()
  t.equal(online.statusCode, 200)
  t.equal(await metricLine(app, 'pullthrough_offline'), 'pullthrough_offline 0')
})

t.test('offline from the config; no switch through the API without admin.token', async (t) => {
  const index = await startPypiUpstream(t)
  const app = await startApp(t, { yaml: `offline: true\n${indexYaml([index])}` })
  const get = await request(`${app.url}/-/api/v1/offline`)
  t.same(await get.body.json(), { offline: true })
  t.match(await setOffline(app, '{"offline": false}', null), {
    status: 403,
    body: { error: 'PT_API_FORBIDDEN', message: /admin\.token/ },
  })
  const res = await request(`${app.url}/simple/app/`)
  t.equal(res.statusCode, 503)
  await res.body.dump()
  t.equal(index.count(), 0, 'the index was never asked')
})
