/**
 * What the cache does when an upstream deletes what it holds (a release
 * pulled, a project removed): with the default `onUpstreamNotFound: keep`,
 * skopeo and pip keep getting it from the cache; with `drop` they get the
 * upstream's 404. Real Distribution registry (manifest deleted through its
 * API) and a PyPI-shaped index that starts answering 404.
 */
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { request } from 'undici'
import { startApp } from '../helpers/app.ts'
import { tempDir } from '../helpers/config.ts'
import { buildImage, pullImage } from '../helpers/images.ts'
import { pipInstallThrough } from '../helpers/pypi-packages.ts'
import { indexYaml, startPypiUpstream } from '../helpers/pypi-upstream.ts'
import { startRegistry } from '../helpers/registry.ts'

const HOUR_MS = 3_600_000

async function upstreams(t: Test) {
  const registry = await startRegistry(t)
  const image = await buildImage(join(await tempDir(t, 'pt-img-')), { layers: [4096] })
  const pushed = await registry.pushImage(image, 'library/app:1.0')
  const index = await startPypiUpstream(t)
  return { registry, pushed, index }
}

async function cacheOf(t: Test, parts: Awaited<ReturnType<typeof upstreams>>, drop: boolean) {
  let offset = 0
  const rule = drop ? 'onUpstreamNotFound: drop, ' : ''
  const app = await startApp(t, {
    yaml: `docker:
  registries:
    - { name: docker.io, default: true, ${rule}upstreams: [{ url: "${parts.registry.url}" }] }
${indexYaml([parts.index], drop ? '      onUpstreamNotFound: drop\n' : '')}`,
    deps: { now: () => Date.now() + offset },
  })
  const host = new URL(app.url).host
  const pull = (name: string) => pullImage(t, `${host}/app:1.0`, join(app.dir, name))
  await pull('first')
  const pip = await pipInstallThrough(t, app.url, ['app'])
  t.equal(pip.code, 0, pip.stderr)
  await app.app.services.cache.settled()
  return {
    app,
    pull,
    later: () => {
      offset += HOUR_MS // past every tagTTL and indexTTL: the next pull asks the upstream
    },
  }
}

t.test('keep (the default): deleted upstream, still served from the cache', async (t) => {
  const parts = await upstreams(t)
  const { app, pull, later } = await cacheOf(t, parts, false)
  await parts.registry.deleteManifest('library/app', parts.pushed.digest)
  const gone = await request(`${parts.registry.url}/v2/library/app/manifests/1.0`)
  await gone.body.dump()
  t.equal(gone.statusCode, 404, 'the registry no longer has the tag')
  parts.index.notFound('/simple/app/')
  later()

  const again = await pull('again')
  t.equal(again.digest, parts.pushed.digest, 'skopeo gets the same image from the cache')
  const pip = await pipInstallThrough(t, app.url, ['app'])
  t.equal(pip.code, 0, pip.stderr)
  const pulls = app.logs.lines.filter((l) => l.msg === 'pull' && l.cache === 'stale')
  t.ok(
    pulls.some((l) => l.repository === 'library/app' && l.reference === '1.0'),
    'the tag is served stale',
  )
  t.ok(
    pulls.some((l) => l.project === 'app'),
    'and the page',
  )
  t.ok(
    app.logs.lines.some((l) =>
      /no longer has the manifest; serving the cached one/.test(String(l.msg)),
    ),
    'the log says why',
  )
})

t.test('drop: deleted upstream, gone from the cache too', async (t) => {
  const parts = await upstreams(t)
  const { app, pull, later } = await cacheOf(t, parts, true)
  await parts.registry.deleteManifest('library/app', parts.pushed.digest)
  parts.index.notFound('/simple/app/')
  later()
  await t.rejects(pull('again'), 'skopeo is told the tag is unknown')
  const res = await request(`${app.url}/v2/library/app/manifests/1.0`)
  t.equal(res.statusCode, 404)
  t.match(await res.body.json(), { errors: [{ code: 'MANIFEST_UNKNOWN' }] })
  const page = await request(`${app.url}/simple/app/`)
  await page.body.dump()
  t.equal(page.statusCode, 404, 'and pip that the project is')
})
