/**
 * The scrub as a user meets it: skopeo pulls an image through pullthrough
 * from a real registry, a byte of a stored layer is flipped on disk, and
 * `pullthrough verify` (the real CLI) finds it, quarantines it and exits 1;
 * the next skopeo pull fetches the layer again and a second verify is clean.
 */
import { readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { request } from 'undici'
import { startApp, type TestApp } from '../helpers/app.ts'
import { cleanEnv, runCli } from '../helpers/cli.ts'
import { tempDir } from '../helpers/config.ts'
import { metricSum } from '../helpers/http.ts'
import { buildImage, pullImage } from '../helpers/images.ts'
import { startRegistry } from '../helpers/registry.ts'

const TOKEN = 'verify-test-admin-token-0123'
const KiB = 1024

function blobFile(app: TestApp, digest: string): string {
  const hex = digest.slice('sha256:'.length)
  return join(app.storagePath, 'blobs', 'sha256', hex.slice(0, 2), hex)
}

async function setUp(t: Test, layers: number[], admin = `admin: { token: "${TOKEN}" }\n`) {
  const registry = await startRegistry(t)
  const image = await buildImage(join(await tempDir(t, 'pt-img-')), { layers })
  const pushed = await registry.pushImage(image, 'library/app:1.0')
  const app = await startApp(t, {
    yaml: `docker: { registries: [{ name: docker.io, default: true, upstreams: [{ url: "${registry.url}" }] }] }
scrub: { interval: 0 }
${admin}`,
  })
  const host = new URL(app.url).host
  await pullImage(t, `${host}/app:1.0`, join(await tempDir(t, 'pt-out-'), 'first'))
  await app.app.services.cache.settled()
  return { app, pushed, host }
}

const verify = (t: Test, app: TestApp, ...extra: string[]) =>
  runCli(t, ['verify', '--url', app.url, '--token', TOKEN, ...extra], { env: cleanEnv() })

t.test('verify finds a flipped byte; the next pull fetches the layer again', async (t) => {
  const { app, pushed, host } = await setUp(t, [4 * KiB, 300 * KiB])
  const layer = pushed.manifests[0]?.layers[1] ?? ''
  const file = blobFile(app, layer)
  const original = await readFile(file)
  const flipped = Buffer.from(original)
  flipped[flipped.length >> 1] = (flipped[flipped.length >> 1] ?? 0) ^ 0xff
  await writeFile(file, flipped)
  const stored = (await app.app.deps.metadata.blobTotals()).count

  const run = await verify(t, app, '--rate', '100MB/s')
  t.equal(run.code, 1, `exit 1 when something was quarantined\n${run.stderr}`)
  t.match(run.stdout, /checked\s+ok\s+corrupt \(quarantined\)\s+skipped\s+read\s+seconds/)
  t.match(
    run.stdout,
    new RegExp(`\\n${stored}\\s+${stored - 1}\\s+1\\s+0\\s`),
    'every blob checked',
  )
  t.match(run.stdout, `Quarantined (removed; the next pull fetches them again):\n  ${layer}\n`)
  await t.rejects(stat(file), { code: 'ENOENT' }, 'the corrupt layer is gone from disk')
  t.equal(await app.app.deps.metadata.getBlob(layer), undefined, 'and from the metadata store')

  const status = await request(`${app.url}/-/api/v1/verify`, {
    headers: { authorization: `Bearer ${TOKEN}` },
  })
  t.match(await status.body.json(), {
    running: false,
    run: { trigger: 'api', blobs: stored, corrupt: 1, corruptDigests: [layer], error: null },
  })
  t.equal(await metricSum(app.url, 'pullthrough_scrub_blobs_total{result="corrupt"}'), 1)
  t.equal(await metricSum(app.url, 'pullthrough_storage_corruptions_total'), 1)

  const fetched = await metricSum(app.url, 'pullthrough_upstream_request_duration_seconds_count')
  await pullImage(t, `${host}/app:1.0`, join(await tempDir(t, 'pt-out-'), 'second'))
  await app.app.services.cache.settled()
  t.ok(
    (await metricSum(app.url, 'pullthrough_upstream_request_duration_seconds_count')) > fetched,
    'the layer came from the registry again',
  )
  t.ok((await readFile(file)).equals(original), 'and is stored whole again')
  const clean = await verify(t, app, '--json')
  t.equal(clean.code, 0, clean.stderr)
  t.match(JSON.parse(clean.stdout), { blobs: stored, ok: stored, corrupt: 0 })
})

t.test('verify refuses clearly: no admin token, a bad rate, a run already going', async (t) => {
  // 8 MiB at 1 MiB/s: the run outlasts the CLI's start-up even on a loaded machine.
  const { app } = await setUp(t, [4 * KiB, 8 * 1024 * KiB])
  const slow = await request(`${app.url}/-/api/v1/verify`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ rate: '1MiB/s' }),
  })
  t.equal(slow.statusCode, 202)
  t.match(await slow.body.json(), { running: true, run: { rate: 1024 * 1024 } })
  const again = await request(`${app.url}/-/api/v1/verify`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    body: '{}',
  })
  t.equal(again.statusCode, 409, 'a second start while one runs')
  t.match(await again.body.json(), { error: 'PT_API_CONFLICT' })
  const busy = await verify(t, app)
  t.equal(busy.code, 1)
  t.match(busy.stderr, /answered 409: a scrub is already running/)
  const rate = await verify(t, app, '--rate', 'fast')
  t.equal(rate.code, 1)
  t.match(rate.stderr, /answered 400: rate: must be a rate like 100MB\/s/)
  await app.app.services.scrubber.settled()
  const took = app.app.services.scrubber.status().run
  t.ok(
    (took?.finishedAt ?? 0) - (took?.startedAt ?? 0) >= 7_000,
    'about 8 MiB at 1 MiB/s took its time',
  )
  const misplaced = await runCli(t, ['stats', '--rate', '1MB'], { env: cleanEnv() })
  t.equal(misplaced.code, 2)
  t.match(misplaced.stderr, '--rate is an option of verify')
})

t.test('without admin.token a scrub cannot be started through the API', async (t) => {
  const { app } = await setUp(t, [4 * KiB], '')
  const run = await runCli(t, ['verify', '--url', app.url], { env: cleanEnv() })
  t.equal(run.code, 1)
  t.match(run.stderr, /answered 403: changes through the API need admin\.token/)
})
