/**
 * A real pip installs through pullthrough, which fills from test-owned
 * indexes built from real distributions: a pypi.org-like index (PEP 691 JSON,
 * files on a separate host) and a TUNA-like mirror (HTML, relative links).
 */
import t, { type Test } from 'tap'
import { startApp, type TestApp } from '../helpers/app.ts'
import { tempDir } from '../helpers/config.ts'
import { pip } from '../helpers/pypi-packages.ts'
import { startMirrorUpstream, startPypiUpstream } from '../helpers/pypi-upstream.ts'

async function pipInstall(t: Test, app: TestApp, args: readonly string[], index = '/simple/') {
  const target = await tempDir(t, 'pt-site-')
  const host = new URL(app.url).host
  return pip(t, [
    'install',
    '--index-url',
    `${app.url}${index}`,
    '--trusted-host',
    host,
    '--target',
    target,
    ...args,
  ])
}

t.test('pip installs app and its dependency through pullthrough from a JSON index', async (t) => {
  const upstream = await startPypiUpstream(t)
  const app = await startApp(t, {
    yaml: `pypi:
  indexes:
    - name: pypi
      default: true
      upstreams: [{ url: "${upstream.index}" }]
      fileHosts: ["${upstream.files.origin}"]
`,
  })
  const run = await pipInstall(t, app, ['app'])
  t.equal(run.code, 0, run.stderr)
  t.match(run.stdout, /Successfully installed app-1\.0 lib-1\.1/)
  const pulls = app.logs.lines.filter((l) => l.msg === 'pull')
  t.ok(pulls.some((p) => p.project === 'lib' && p.cache === 'miss'))
})

t.test('pip installs through pullthrough from an HTML mirror with relative links', async (t) => {
  const mirror = await startMirrorUpstream(t)
  const app = await startApp(t, {
    yaml: `pypi:
  indexes:
    - name: pypi
      default: true
      upstreams: [{ url: "${mirror.index}" }]
`,
  })
  const run = await pipInstall(t, app, ['app'])
  t.equal(run.code, 0, run.stderr)
  t.match(run.stdout, /Successfully installed app-1\.0 lib-1\.1/)
})
