/**
 * A real pip installs through pullthrough, which fills from test-owned
 * indexes built from real distributions: a pypi.org-like index (PEP 691 JSON,
 * files on a separate host) and a TUNA-like mirror (HTML, relative links).
 * Then the upstreams fail one by one, and pullthrough restarts with all down.
 */
import t, { type Test } from 'tap'
import { startApp, type TestApp } from '../helpers/app.ts'
import { tempDir } from '../helpers/config.ts'
import { findPep714Pip, pip, YANKED_REASON } from '../helpers/pypi-packages.ts'
import { startRedis } from '../helpers/redis-server.ts'
import { indexYaml, startMirrorUpstream, startPypiUpstream } from '../helpers/pypi-upstream.ts'

async function pipInstall(t: Test, app: TestApp, args: readonly string[]) {
  const target = await tempDir(t, 'pt-site-')
  const host = new URL(app.url).host
  const index = ['--index-url', `${app.url}/simple/`, '--trusted-host', host]
  return pip(t, ['install', ...index, '--target', target, ...args])
}

t.test(
  'pip installs app and its dependency from a JSON index, yanked and too-new skipped',
  async (t) => {
    const upstream = await startPypiUpstream(t)
    const app = await startApp(t, { yaml: indexYaml([upstream]) })
    const run = await pipInstall(t, app, ['app'])
    t.equal(run.code, 0, run.stderr)
    // lib 2.0 is yanked and lib 3.0 needs Python >= 3.99: pip settles on 1.1.
    t.match(run.stdout, /Successfully installed app-1\.0 lib-1\.1/)
    const pulls = app.logs.lines.filter((l) => l.msg === 'pull')
    t.ok(pulls.some((p) => p.project === 'lib' && p.cache === 'miss'))

    const pinned = await pipInstall(t, app, ['lib==2.0'])
    t.equal(pinned.code, 0, pinned.stderr)
    t.match(pinned.stdout + pinned.stderr, YANKED_REASON, 'pip shows the yank reason')

    const fancy = await pipInstall(t, app, ['Fancy_Name.Pkg'])
    t.equal(fancy.code, 0, fancy.stderr)
    t.match(fancy.stdout, /Successfully installed Fancy[-_.]Name[-_.]Pkg-0\.1/i)
  },
)

t.test('pip installs through pullthrough from an HTML mirror with relative links', async (t) => {
  const mirror = await startMirrorUpstream(t)
  const app = await startApp(t, { yaml: indexYaml([mirror]) })
  const run = await pipInstall(t, app, ['app'])
  t.equal(run.code, 0, run.stderr)
  t.match(run.stdout, /Successfully installed app-1\.0 lib-1\.1/)
})

// Debian 12's pip (23.0) does not read PEP 714 core-metadata from JSON pages; a
// newer one may be anywhere (PATH, pyenv, Debian 13's /usr/bin/python3).
const newPip = await findPep714Pip()
const noNewPip =
  newPip.found === undefined && `no pip >= 24 found; searched ${newPip.searched.join(', ')}`

t.test(
  'a newer pip resolves from PEP 658 metadata fetched through pullthrough',
  { skip: noNewPip },
  async (t) => {
    const python = newPip.found?.python ?? ''
    t.comment(`pip ${newPip.found?.pipVersion ?? '?'} run by ${python}`)
    const upstream = await startPypiUpstream(t)
    const app = await startApp(t, { yaml: indexYaml([upstream]) })
    const dest = await tempDir(t, 'pt-dl-')
    const host = new URL(app.url).host
    const index = ['--index-url', `${app.url}/simple/`, '--trusted-host', host]
    const run = await pip(t, ['download', ...index, '--dest', dest, 'app'], { python })
    t.equal(run.code, 0, run.stderr)
    const files = app.logs.lines.filter((l) => l.msg === 'pull').map((l) => String(l.file))
    t.ok(
      files.some((f) => f.startsWith('app-1.0') && f.endsWith('.whl.metadata')),
      'pip read the metadata through pullthrough',
    )
    const libWheels = files.filter((f) => f.startsWith('lib-') && f.endsWith('.whl'))
    t.same(libWheels, ['lib-1.1-py3-none-any.whl'], 'only the wheel it installs was downloaded')
  },
)

t.test(
  'a flipped byte in a wheel never reaches an installed environment, nor the cache',
  async (t) => {
    const upstream = await startPypiUpstream(t)
    const app = await startApp(t, { yaml: indexYaml([upstream]) })
    const wheel = upstream.packages.project('lib').files.find((f) => f.version === '1.1')!
    upstream.files.corrupt(upstream.fileUrl(wheel))
    const bad = await pipInstall(t, app, ['lib==1.1'])
    t.not(bad.code, 0, 'pip failed rather than install corrupt bytes')
    t.notMatch(bad.stdout, /Successfully installed/)
    t.notOk(await app.app.deps.blobs.has(`sha256:${wheel.sha256}`), 'nothing was cached')
    upstream.files.clearFaults()
    const good = await pipInstall(t, app, ['lib==1.1'])
    t.equal(good.code, 0, good.stderr)
  },
)

for (const store of ['embedded', 'redis'] as const) {
  t.test(
    `with the ${store} store: failover, every upstream down, restart with all down`,
    async (t) => {
      const first = await startPypiUpstream(t)
      const second = await startMirrorUpstream(t)
      const redis = store === 'redis' ? await startRedis(t) : undefined
      const metadata = redis ? `metadata: { redis: { url: "${redis.url}" } }\n` : ''
      const yaml = indexYaml([first, second], `      indexTTL: 1ms\n${metadata}`)
      const app = await startApp(t, { yaml })
      await first.stop()
      const failover = await pipInstall(t, app, ['app'])
      t.equal(failover.code, 0, failover.stderr)
      t.ok(
        app.logs.lines.some(
          (l) => l.msg === 'pull' && l.upstream === second.index.replace(/\/$/, ''),
        ),
        'the mirror answered',
      )
      await second.stop()
      const stale = await pipInstall(t, app, ['app'])
      t.equal(stale.code, 0, stale.stderr)
      t.ok(app.logs.lines.some((l) => l.msg === 'pull' && l.cache === 'stale'))
      await app.app.close()
      const again = await startApp(t, { yaml, env: { PULLTHROUGH_STORAGE_PATH: app.storagePath } })
      const restarted = await pipInstall(t, again, ['app'])
      t.equal(restarted.code, 0, restarted.stderr)
      t.match(restarted.stdout, /Successfully installed app-1\.0 lib-1\.1/)
    },
  )
}
