/**
 * `pullthrough stats` and `pullthrough ls` as a user runs them (the real CLI
 * as a child process) against a running server that served real pulls from a
 * real registry: aligned tables, JSON for scripts, and clear failures.
 */
import t, { type Test } from 'tap'
import { request } from 'undici'
import { startApp, type TestApp } from '../helpers/app.ts'
import { cleanEnv, runCli } from '../helpers/cli.ts'
import { tempDir } from '../helpers/config.ts'
import { closedPort } from '../helpers/fake-upstream.ts'
import { OCI_MANIFEST, pushManifest } from '../helpers/manifests.ts'
import { startRegistry } from '../helpers/registry.ts'

const TOKEN = 'cli-test-admin-token-0123'

async function served(t: Test): Promise<TestApp> {
  const registry = await startRegistry(t)
  await pushManifest(registry, 'library/alpine', 'latest')
  await pushManifest(registry, 'myorg/tool', 'v1')
  const app = await startApp(t, {
    yaml: `docker: { registries: [{ name: docker.io, default: true, upstreams: [{ url: "${registry.url}" }] }] }
admin: { token: "${TOKEN}" }
`,
  })
  for (const [name, times] of [
    ['library/alpine', 3],
    ['myorg/tool', 1],
  ] as const)
    for (let i = 0; i < times; i++) {
      const res = await request(
        `${app.url}/v2/${name}/manifests/${name === 'myorg/tool' ? 'v1' : 'latest'}`,
        {
          headers: { accept: OCI_MANIFEST },
        },
      )
      t.equal(res.statusCode, 200)
      await res.body.dump()
    }
  await app.app.services.pulls?.flush()
  return app
}

t.test('stats and ls print aligned tables and JSON of what the server served', async (t) => {
  const app = await served(t)
  const args = ['--url', app.url, '--token', TOKEN]
  const cwd = await tempDir(t)

  const stats = await runCli(t, ['stats', ...args], { cwd })
  t.equal(stats.code, 0, stats.stderr)
  const lines = stats.stdout.split('\n')
  t.match(lines[0], /^window\s+protocol\s+pulls\s+hit ratio\s+served/)
  const docker1h = lines.find((l) => /^1h\s+docker\s/.test(l)) ?? ''
  t.match(docker1h, /^1h\s+docker\s+4\s+50\.0%/, '4 pulls: alpine a miss then 2 hits, tool a miss')
  t.match(stats.stdout, /^disk: .* of 50\.0 GiB \(/m)

  const ls = await runCli(t, ['ls', 'docker', ...args], { cwd })
  t.equal(ls.code, 0, ls.stderr)
  const rows = ls.stdout.trimEnd().split('\n')
  t.match(rows[0], /^protocol\s+pool\s+name\s+pulls\s+hit ratio\s+served\s+last pulled$/)
  t.match(rows[1], /^docker\s+docker\.io\s+library\/alpine\s+3\s+66\.7%/)
  t.match(rows[2], /^docker\s+docker\.io\s+myorg\/tool\s+1\s+0\.0%/)
  const column = (rows[0] ?? '').indexOf('pulls')
  t.ok(
    rows.slice(1).every((r) => r.length >= column),
    'columns line up',
  )

  const json = await runCli(t, ['ls', '--json', '--sort', 'last', ...args], { cwd })
  t.equal(json.code, 0, json.stderr)
  const items = (JSON.parse(json.stdout) as { items: { name: string }[] }).items
  t.same(items.map((i) => i.name).sort(), ['library/alpine', 'myorg/tool'])

  const env = cleanEnv({ PULLTHROUGH_ADMIN_TOKEN: TOKEN })
  const fromEnv = await runCli(t, ['ls', 'pypi', '--url', app.url], { cwd, env })
  t.equal(fromEnv.code, 0, fromEnv.stderr)
  t.equal(fromEnv.stdout, 'nothing pulled in the last 24h\n')
})

t.test('clear failures: no server, no token, bad arguments', async (t) => {
  const app = await served(t)
  const cwd = await tempDir(t)
  const down = await runCli(t, ['stats', '--url', `http://127.0.0.1:${await closedPort()}`], {
    cwd,
  })
  t.equal(down.code, 1)
  t.match(down.stderr, /cannot reach pullthrough at http:\/\/127\.0\.0\.1:\d+ .*is it running/)
  const noToken = await runCli(t, ['stats', '--url', app.url], { cwd })
  t.equal(noToken.code, 1)
  t.match(noToken.stderr, /requires the admin token: pass --token or set PULLTHROUGH_ADMIN_TOKEN/)
  const sort = await runCli(t, ['ls', '--sort', 'colour', '--url', app.url], { cwd })
  t.equal(sort.code, 2)
  t.match(sort.stderr, /--sort takes pulls, size or last/)
  const what = await runCli(t, ['ls', 'npm', '--url', app.url], { cwd })
  t.equal(what.code, 2)
  const window = await runCli(t, ['ls', '--window', '2w', '--url', app.url, '--token', TOKEN], {
    cwd,
  })
  t.equal(window.code, 1)
  t.match(window.stderr, /answered 400: window/)
})
