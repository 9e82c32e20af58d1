/**
 * retention.keepTags as a user meets it: tags pulled through pullthrough from
 * a real registry, `pullthrough gc --dry-run` saying which would go, the real
 * run dropping all but each repository's newest, a pinned tag kept whatever
 * its age, and what was dropped no longer served once the upstream is down.
 */
import { join } from 'node:path'
import t from 'tap'
import { request } from 'undici'
import { startApp } from '../helpers/app.ts'
import { cleanEnv, runCli } from '../helpers/cli.ts'
import { tempDir } from '../helpers/config.ts'
import { get, metricSum } from '../helpers/http.ts'
import { buildImage, type PushedImage } from '../helpers/images.ts'
import { startRegistry } from '../helpers/registry.ts'

const TOKEN = 'gc-tags-test-admin-token-0123'
const MINUTE_MS = 60_000
/** What dockerd sends. */
const DOCKER_ACCEPT = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.docker.distribution.manifest.v2+json',
].join(', ')

t.test('keepTags: the newest tags of each repository stay, pinned ones too', async (t) => {
  const registry = await startRegistry(t)
  const dir = await tempDir(t, 'pt-keep-tags-')
  const pushed = new Map<string, PushedImage>()
  for (const [i, ref] of ['app:1', 'app:2', 'app:3', 'app:4', 'other:x'].entries()) {
    const image = await buildImage(join(dir, String(i)), { layers: [1000 + i] })
    pushed.set(ref, await registry.pushImage(image, `library/${ref}`))
  }
  let clock = Date.now()
  const app = await startApp(t, {
    deps: { now: () => clock },
    yaml: `docker:
  registries:
    - { name: docker.io, default: true, tagTTL: 1h, upstreams: [{ url: "${registry.url}" }] }
retention: { keepTags: 2 }
admin: { token: "${TOKEN}" }
`,
  })
  const manifest = (ref: string) => {
    const [repo, tag] = ref.split(':')
    return get(`${app.url}/v2/${repo ?? ''}/manifests/${tag ?? ''}`, {
      headers: { accept: DOCKER_ACCEPT },
    })
  }
  // Pulled oldest first, a minute apart; app:1 is pulled again last, which does not make it new.
  for (const ref of ['app:1', 'app:2', 'app:3', 'app:4', 'other:x', 'app:1']) {
    t.equal((await manifest(ref)).status, 200, `${ref} pulled`)
    clock += MINUTE_MS
  }
  const admin = { authorization: `Bearer ${TOKEN}` }
  const tags = async () =>
    [...(await app.app.deps.metadata.listTags('docker.io', 'library/app')).keys()].sort()
  t.same(await tags(), ['1', '2', '3', '4'])

  const gc = (...extra: string[]) =>
    runCli(t, ['gc', '--url', app.url, '--token', TOKEN, ...extra], { env: cleanEnv() })
  const dry = await gc('--dry-run')
  t.equal(dry.code, 0, dry.stderr)
  t.match(dry.stdout, /tags beyond the newest 2 per repository, dropped\s+2\s/)
  t.match(
    dry.stdout,
    'Dropped tags (would be):\n  docker.io/library/app:2\n  docker.io/library/app:1\n',
  )
  t.same(await tags(), ['1', '2', '3', '4'], 'the dry run dropped nothing')

  // app:1's manifest is pinned: it stays, and takes no place among the two newest.
  const pinned = pushed.get('app:1')?.digest ?? ''
  const pin = await request(`${app.url}/-/api/v1/pins/${pinned}`, { method: 'PUT', headers: admin })
  t.equal(pin.statusCode, 200)
  await pin.body.dump()
  const real = await gc('--json')
  t.equal(real.code, 0, real.stderr)
  t.match(JSON.parse(real.stdout), {
    dryRun: false,
    tags: { keepTags: 2, count: 1, names: ['docker.io/library/app:2'], pinned: 1 },
  })
  t.same(await tags(), ['1', '3', '4'], 'app:2 went')
  t.same(
    [...(await app.app.deps.metadata.listTags('docker.io', 'library/other')).keys()],
    ['x'],
    'a repository with fewer tags keeps them all',
  )
  t.equal(await metricSum(app.url, 'pullthrough_gc_tags_dropped_total'), 1)

  // With the upstream down, the kept tags are served from the cache; the dropped one is not.
  await registry.stop()
  for (const ref of ['app:1', 'app:3', 'app:4', 'other:x'])
    t.equal((await manifest(ref)).status, 200, `${ref} still served`)
  t.not((await manifest('app:2')).status, 200, 'app:2 is no longer served')
  await registry.start()
})
