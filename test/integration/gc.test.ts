/**
 * `pullthrough gc` as a user runs it against a server that served real skopeo
 * pulls: a blob file removed by hand, a file the metadata store never
 * recorded, an abandoned download and, with `retention.unusedFor`, blobs
 * nobody pulled for that long. The dry run reports and changes nothing; the
 * real run repairs and deletes; the image can be pulled again after.
 */
import { randomBytes, createHash } from 'node:crypto'
import { mkdir, rm, utimes, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { request } from 'undici'
import { startApp, type TestApp } from '../helpers/app.ts'
import { cleanEnv, runCli } from '../helpers/cli.ts'
import { tempDir } from '../helpers/config.ts'
import { buildImage, pullImage } from '../helpers/images.ts'
import { startRegistry } from '../helpers/registry.ts'

const TOKEN = 'gc-test-admin-token-0123456'
const DAY_MS = 86_400_000

function blobFile(app: TestApp, digest: string): string {
  const hex = digest.slice('sha256:'.length)
  return join(app.storagePath, 'blobs', 'sha256', hex.slice(0, 2), hex)
}

t.test('gc --dry-run reports, gc repairs and applies retention', async (t) => {
  const registry = await startRegistry(t)
  const image = await buildImage(join(await tempDir(t, 'pt-img-')), { layers: [4096, 20_000] })
  const pushed = await registry.pushImage(image, 'library/app:1.0')
  let offset = 0
  const app = await startApp(t, {
    yaml: `docker: { registries: [{ name: docker.io, default: true, upstreams: [{ url: "${registry.url}" }] }] }
retention: { unusedFor: 1d }
admin: { token: "${TOKEN}" }
`,
    deps: { now: () => Date.now() + offset },
  })
  const host = new URL(app.url).host
  await pullImage(t, `${host}/app:1.0`, join(await tempDir(t, 'pt-out-'), 'first'))
  await app.app.services.cache.settled()
  await app.app.services.accesses.flush()
  const { metadata } = app.app.deps
  const stored = (await metadata.blobTotals()).count

  // A layer removed by hand, a blob the store never recorded, an abandoned download.
  const removed = pushed.manifests[0]?.layers[0] ?? ''
  await rm(blobFile(app, removed))
  const extra = randomBytes(1000)
  const extraDigest = `sha256:${createHash('sha256').update(extra).digest('hex')}`
  await mkdir(join(blobFile(app, extraDigest), '..'), { recursive: true })
  await writeFile(blobFile(app, extraDigest), extra)
  const temp = join(app.storagePath, 'tmp', 'abandoned-download')
  await writeFile(temp, 'partial')
  const hourAgo = new Date(Date.now() - 3_600_000)
  await utimes(temp, hourAgo, hourAgo)

  const gc = (...extra: string[]) =>
    runCli(t, ['gc', '--url', app.url, '--token', TOKEN, ...extra], { env: cleanEnv() })
  const dry = await gc('--dry-run')
  t.equal(dry.code, 0, dry.stderr)
  t.match(dry.stdout, /^Dry run: nothing was changed\./)
  t.match(dry.stdout, /records without a file, dropped\s+1\s/)
  t.match(dry.stdout, /files without a record, recorded\s+1\s+1000 B/)
  t.match(dry.stdout, /not pulled for 1 days, deleted\s+0\s/)
  t.match(dry.stdout, /abandoned temp files\s+1/)
  t.match(dry.stdout, `Dropped records (would be):\n  ${removed}\n`)
  t.ok(await metadata.getBlob(removed), 'the dry run dropped nothing')
  t.equal(await metadata.getBlob(extraDigest), undefined, 'and recorded nothing')

  const real = await gc('--json')
  t.equal(real.code, 0, real.stderr)
  t.match(JSON.parse(real.stdout), {
    dryRun: false,
    recordsWithoutFile: { count: 1, digests: [removed] },
    filesWithoutRecord: { count: 1, bytes: 1000, digests: [extraDigest] },
    unused: { count: 0 },
    tempFiles: 1,
  })
  t.equal(await metadata.getBlob(removed), undefined, 'the record of the missing file is gone')
  t.match(await metadata.getBlob(extraDigest), { size: 1000 }, 'the unknown file is recorded')
  t.equal((await metadata.blobTotals()).count, stored, 'one record less, one more')

  // The config blob is pinned through the API: the retention rule must keep it.
  const config = pushed.manifests[0]?.config ?? ''
  const admin = { authorization: `Bearer ${TOKEN}` }
  const pin = await request(`${app.url}/-/api/v1/pins/${config}`, { method: 'PUT', headers: admin })
  t.same(await pin.body.json(), { digest: config, pinned: true })
  const bad = await request(`${app.url}/-/api/v1/pins/sha256:nothex`, {
    method: 'PUT',
    headers: admin,
  })
  t.equal(bad.statusCode, 400)
  await bad.body.dump()
  const pins = await request(`${app.url}/-/api/v1/pins`, { headers: admin })
  t.same(await pins.body.json(), { items: [config] })

  // Two days later nothing was pulled: the retention rule deletes every blob but the pinned one.
  offset = 2 * DAY_MS
  const later = await gc('--json')
  t.match(JSON.parse(later.stdout), {
    unused: { count: stored - 1, unusedForMs: DAY_MS },
    pinned: 1,
    recordsWithoutFile: { count: 0 },
  })
  t.equal((await metadata.blobTotals()).count, 1, 'only the pinned blob is left')
  const catalog = await request(`${app.url}/-/api/v1/artifacts`, { headers: admin })
  t.match(await catalog.body.json(), { items: [{ digest: config, kind: 'config', pinned: true }] })
  const unpin = await request(`${app.url}/-/api/v1/pins/${config}`, {
    method: 'DELETE',
    headers: admin,
  })
  t.same(await unpin.body.json(), { digest: config, pinned: false })
  t.match(JSON.parse((await gc('--json')).stdout), { unused: { count: 1 }, pinned: 0 })
  t.equal((await metadata.blobTotals()).count, 0, 'unpinned, it goes too')
  const again = await pullImage(t, `${host}/app:1.0`, join(await tempDir(t, 'pt-out-'), 'again'))
  t.equal(again.digest, pushed.digest, 'the image is fetched again')
})

t.test('gc: clear failures', async (t) => {
  const app = await startApp(t, { yaml: `admin: { token: "${TOKEN}" }\n` })
  const misplaced = await runCli(t, ['stats', '--dry-run'], { env: cleanEnv() })
  t.equal(misplaced.code, 2)
  t.match(misplaced.stderr, '--dry-run is an option of gc')
  const extra = await runCli(t, ['gc', 'now', '--url', app.url, '--token', TOKEN], {
    env: cleanEnv(),
  })
  t.equal(extra.code, 2)
  t.match(extra.stderr, 'unexpected argument "now"')
  const open = await startApp(t)
  const refused = await runCli(t, ['gc', '--url', open.url], { env: cleanEnv() })
  t.equal(refused.code, 1)
  t.match(refused.stderr, /answered 403: changes through the API need admin\.token/)
})
