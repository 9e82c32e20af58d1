/**
 * Refresh-ahead with a real registry and a PyPI-shaped index: a tag or page
 * pulled in the last fifth of its TTL is served from the cache at once and
 * revalidated in the background, so the pull after the TTL would have run out
 * is still a hit and asks no upstream.
 */
import { join } from 'node:path'
import t from 'tap'
import { request } from 'undici'
import { startApp, type TestApp } from '../helpers/app.ts'
import { tempDir } from '../helpers/config.ts'
import { metricSum } from '../helpers/http.ts'
import { buildImage } from '../helpers/images.ts'
import { indexYaml, startPypiUpstream } from '../helpers/pypi-upstream.ts'
import { startRegistry } from '../helpers/registry.ts'

const MINUTE_MS = 60_000

const upstreamRequests = (app: TestApp) =>
  metricSum(app.url, 'pullthrough_upstream_request_duration_seconds_count')

async function pull(app: TestApp, path: string, accept: string): Promise<string> {
  const res = await request(`${app.url}${path}`, { headers: { accept } })
  await res.body.dump()
  if (res.statusCode !== 200) throw new Error(`${path} answered ${res.statusCode}`)
  const last = app.logs.lines.filter((l) => l.msg === 'pull').at(-1)
  return String(last?.cache)
}

t.test('a tag and a page pulled near the end of their TTL are renewed ahead of it', async (t) => {
  const registry = await startRegistry(t)
  const image = await buildImage(join(await tempDir(t, 'pt-img-')), { layers: [4096] })
  const pushed = await registry.pushImage(image, 'library/app:1.0')
  const index = await startPypiUpstream(t)
  let offset = 0
  const app = await startApp(t, {
    yaml: `docker:
  registries:
    - { name: docker.io, default: true, tagTTL: 10m, upstreams: [{ url: "${registry.url}" }] }
${indexYaml([index], '      indexTTL: 10m\n')}`,
    deps: { now: () => Date.now() + offset },
  })
  const settle = async () => {
    await app.app.services.manifests.idle()
    await app.app.services.pages.idle()
  }
  const tag = () => pull(app, '/v2/library/app/manifests/1.0', pushed.mediaType)
  const page = () => pull(app, '/simple/app/', 'application/vnd.pypi.simple.v1+json')
  t.equal(await tag(), 'miss')
  t.equal(await page(), 'miss')

  offset = 5 * MINUTE_MS
  let asked = await upstreamRequests(app)
  t.equal(await tag(), 'hit')
  t.equal(await page(), 'hit')
  await settle()
  t.equal(await upstreamRequests(app), asked, 'half-way through the TTL nobody is asked')

  offset = 9 * MINUTE_MS
  t.equal(await tag(), 'hit', 'near the end of its TTL the tag is still served at once')
  t.equal(await page(), 'hit', 'and so is the page')
  await settle()
  t.equal(await upstreamRequests(app), asked + 2, 'each was revalidated in the background')

  offset = 12 * MINUTE_MS
  asked = await upstreamRequests(app)
  t.equal(await tag(), 'hit', 'past the first TTL: still a hit, renewed ahead')
  t.equal(await page(), 'hit')
  await settle()
  t.equal(await upstreamRequests(app), asked, 'and nothing waited on an upstream')
})
