/**
 * Access control with real clients: skopeo with --creds and without, the
 * registry token flow (/v2/ challenge, /-/token, Bearer pulls), access and
 * proxy rules, the admin API, htpasswd reloaded while running, and pip with
 * credentials in the index URL and in ~/.netrc. Users come from an htpasswd
 * file of bcrypt hashes in the `$2y$` form `htpasswd -B` writes.
 */
import { appendFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { request } from 'undici'
import { startApp, type TestApp } from '../helpers/app.ts'
import { tempDir } from '../helpers/config.ts'
import { buildImage, inspectManifest } from '../helpers/images.ts'
import { startRegistry } from '../helpers/registry.ts'
import { pip } from '../helpers/pypi-packages.ts'
import { indexYaml, startPypiUpstream } from '../helpers/pypi-upstream.ts'
import { basic, htpasswdLine, PASSWORDS, securedRegistry } from '../helpers/access.ts'

async function manifestStatus(app: TestApp, name: string, authorization?: string) {
  const res = await request(`${app.url}/v2/${name}/manifests/v1`, {
    headers: {
      accept: 'application/vnd.oci.image.manifest.v1+json',
      ...(authorization ? { authorization } : {}),
    },
  })
  const body = await res.body.text()
  return { status: res.statusCode, challenge: res.headers['www-authenticate'], body }
}

async function deniedMetrics(app: TestApp): Promise<string> {
  const res = await request(`${app.url}/metrics`)
  return (await res.body.text())
    .split('\n')
    .filter((l) => l.startsWith('pullthrough_access_denied_total'))
    .join('\n')
}

t.test('skopeo pulls with the rights its credentials have, and no more', async (t) => {
  const { app, host, digest } = await securedRegistry(t)
  const alice = `alice:${PASSWORDS.alice}`
  const bob = `bob:${PASSWORDS.bob}`
  t.equal((await inspectManifest(t, `${host}/myorg/secret:v1`, alice)).digest, digest)
  t.equal((await inspectManifest(t, `${host}/library/app:v1`, bob)).digest, digest)
  await t.rejects(inspectManifest(t, `${host}/myorg/secret:v1`, bob), /denied/i)
  await t.rejects(
    inspectManifest(t, `${host}/library/app:v1`),
    /unauthorized|authentication required/i,
  )
  await t.rejects(
    inspectManifest(t, `${host}/library/app:v1`, `bob:wrong-password`),
    /unauthorized|incorrect username/i,
  )
  // A proxy rule holds for everyone, admins too, and no upstream is asked.
  await t.rejects(inspectManifest(t, `${host}/blocked/thing:v1`, alice), /denied/i)
  const refused = app.logs.lines.filter((l) => l.msg === 'access refused')
  t.ok(refused.some((l) => l.user === 'bob' && l.name === 'myorg/secret' && l.rule === 'access[0]'))
  t.ok(
    refused.some((l) => l.user === 'alice' && l.name === 'blocked/thing' && l.rule === 'proxy[0]'),
  )
  t.notOk(
    app.logs.lines.some((l) => l.repository === 'blocked/thing'),
    'nothing was pulled for the blocked name',
  )
  const logged = JSON.stringify(app.logs.lines)
  t.notOk(logged.includes(PASSWORDS.bob) || logged.includes('wrong-password'), 'no password logged')
  t.match(await deniedMetrics(app), /reason="proxy"\} 1/)
})

t.test(
  'the registry token flow: challenge, token for the asked scopes, Bearer pulls',
  async (t) => {
    const { app } = await securedRegistry(t)
    const ping = await request(`${app.url}/v2/`)
    await ping.body.dump()
    t.equal(ping.statusCode, 401)
    t.match(
      ping.headers['www-authenticate'],
      /^Bearer realm="http:\/\/127\.0\.0\.1:\d+\/-\/token",service="pullthrough"$/,
    )
    const signedPing = await request(`${app.url}/v2/`, {
      headers: { authorization: basic('bob', PASSWORDS.bob) },
    })
    await signedPing.body.dump()
    t.equal(signedPing.statusCode, 200, 'Basic works on every request, /v2/ included')

    const anonymous = await manifestStatus(app, 'myorg/secret')
    t.equal(anonymous.status, 401)
    t.match(anonymous.challenge, /scope="repository:myorg\/secret:pull"/)

    const tokenFor = async (authorization: string | undefined, scopes: string[]) => {
      const query = scopes.map((s) => `scope=${encodeURIComponent(s)}`).join('&')
      const res = await request(`${app.url}/-/token?service=pullthrough&${query}`, {
        headers: authorization ? { authorization } : {},
      })
      return {
        status: res.statusCode,
        body: (await res.body.json()) as { token: string; expires_in: number },
      }
    }
    const wrong = await tokenFor(basic('alice', 'nope'), [])
    t.equal(wrong.status, 401, 'wrong credentials fail at login')
    const granted = await tokenFor(basic('alice', PASSWORDS.alice), [
      'repository:myorg/secret:pull,push',
    ])
    t.equal(granted.status, 200)
    t.equal(granted.body.expires_in, 300)
    const bearer = `Bearer ${granted.body.token}`
    t.equal((await manifestStatus(app, 'myorg/secret', bearer)).status, 200)
    // The token names one repository: another one needs another token, though alice may pull it.
    const other = await manifestStatus(app, 'library/app', bearer)
    t.equal(other.status, 401)
    t.match(other.challenge, /scope="repository:library\/app:pull"/)
    // Altered tokens are refused: a flipped signature byte, a changed payload.
    const [head, payload, signature] = granted.body.token.split('.') as [string, string, string]
    const flipped = signature.startsWith('A') ? `B${signature.slice(1)}` : `A${signature.slice(1)}`
    t.equal(
      (await manifestStatus(app, 'myorg/secret', `Bearer ${head}.${payload}.${flipped}`)).status,
      401,
    )
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString()) as { sub: string }
    const forged = Buffer.from(JSON.stringify({ ...claims, sub: 'mallory' })).toString('base64url')
    t.equal(
      (await manifestStatus(app, 'myorg/secret', `Bearer ${head}.${forged}.${signature}`)).status,
      401,
    )

    // bob asks for myorg/secret: the token comes without it, and the pull is refused (he is known: 403).
    const bobs = await tokenFor(basic('bob', PASSWORDS.bob), ['repository:myorg/secret:pull'])
    t.equal(bobs.status, 200)
    const bobClaims = JSON.parse(
      Buffer.from(bobs.body.token.split('.')[1]!, 'base64url').toString(),
    ) as { access: unknown[] }
    t.same(bobClaims.access, [])
    t.equal((await manifestStatus(app, 'myorg/secret', `Bearer ${bobs.body.token}`)).status, 403)
  },
)

t.test('the admin API takes admins by their own credentials when auth is on', async (t) => {
  const { app } = await securedRegistry(t)
  const summary = (authorization?: string) =>
    request(`${app.url}/-/api/v1/summary`, { headers: authorization ? { authorization } : {} })
  const open = await summary()
  await open.body.dump()
  t.equal(open.statusCode, 401, 'no admin.token set, and still not open')
  const asBob = await summary(basic('bob', PASSWORDS.bob))
  await asBob.body.dump()
  t.equal(asBob.statusCode, 401)
  const asAlice = await summary(basic('alice', PASSWORDS.alice))
  await asAlice.body.dump()
  t.equal(asAlice.statusCode, 200)
  // The status page asks a browser for Basic credentials: an admin's own.
  const page = async (authorization?: string) => {
    const res = await request(`${app.url}/-/`, { headers: authorization ? { authorization } : {} })
    await res.body.dump()
    return { status: res.statusCode, challenge: res.headers['www-authenticate'] }
  }
  t.same(await page(), { status: 401, challenge: 'Basic realm="pullthrough"' })
  t.equal((await page(basic('bob', PASSWORDS.bob))).status, 401)
  t.equal((await page(basic('alice', PASSWORDS.alice))).status, 200)
})

t.test('a user added to the htpasswd file can pull without a restart', async (t) => {
  const { app, htpasswd } = await securedRegistry(t)
  const carol = basic('carol', PASSWORDS.carol)
  t.equal((await manifestStatus(app, 'library/app', carol)).status, 401)
  await appendFile(htpasswd, htpasswdLine('carol', PASSWORDS.carol))
  // The file is checked for changes at most once a second.
  const deadline = Date.now() + 5000
  let status = 0
  while (Date.now() < deadline) {
    status = (await manifestStatus(app, 'library/app', carol)).status
    if (status === 200) break
    await new Promise((resolve) => setTimeout(resolve, 250))
  }
  t.equal(status, 200)
  t.ok(app.logs.lines.some((l) => l.msg === 'auth file reloaded' && l.file === 'auth.htpasswd'))
  // A broken edit keeps the users that were there.
  await appendFile(htpasswd, 'dave:{SHA}not-bcrypt\n')
  await new Promise((resolve) => setTimeout(resolve, 1100))
  t.equal((await manifestStatus(app, 'library/app', carol)).status, 200)
  t.ok(
    app.logs.lines.some(
      (l) => l.msg === 'auth file changed but cannot be used; keeping the previous one',
    ),
  )
})

t.test('pip pulls with credentials in the index URL and in ~/.netrc', async (t) => {
  const upstream = await startPypiUpstream(t)
  const dir = await tempDir(t, 'pt-access-pip-')
  const htpasswd = join(dir, 'htpasswd')
  await writeFile(htpasswd, htpasswdLine('alice', PASSWORDS.alice))
  const app = await startApp(t, {
    yaml: `${indexYaml([upstream])}docker: { registries: [] }
auth: { htpasswd: ${htpasswd} }
access:
  - { index: pypi, project: "*", users: [alice] }
`,
  })
  const { host } = new URL(app.url)
  const download = async (indexUrl: string, netrc?: string) => {
    const home = await tempDir(t, 'pt-pip-home-')
    if (netrc !== undefined) await writeFile(join(home, '.netrc'), netrc, { mode: 0o600 })
    const dest = join(home, 'dl')
    const trusted = ['--trusted-host', host.split(':')[0]!]
    return pip(
      t,
      [
        'download',
        '--no-deps',
        '--no-input',
        '--index-url',
        indexUrl,
        ...trusted,
        '-d',
        dest,
        'app',
      ],
      { home },
    )
  }
  const anonymous = await download(`${app.url}/simple/`)
  t.not(anonymous.code, 0, 'no credentials, no download')
  t.ok(
    app.logs.lines.some(
      (l) => l.msg === 'access refused' && l.protocol === 'pypi' && l.rule === 'access[0]',
    ),
    'pullthrough refused the anonymous page request',
  )
  const inUrl = await download(`http://alice:${PASSWORDS.alice}@${host}/simple/`)
  t.equal(inUrl.code, 0, inUrl.stderr)
  t.match(inUrl.stdout, /Saved .*app-1\.0/)
  const viaNetrc = await download(
    `${app.url}/simple/`,
    `machine ${host.split(':')[0]!} login alice password ${PASSWORDS.alice}\n`,
  )
  t.equal(viaNetrc.code, 0, viaNetrc.stderr)
  const page = await request(`${app.url}/simple/app/`, {
    headers: { authorization: basic('alice', PASSWORDS.alice) },
  })
  const html = await page.body.text()
  t.equal(page.statusCode, 200)
  t.notOk(html.includes(PASSWORDS.alice) || html.includes('alice@'), 'links carry no credentials')
})

t.test('a registry with anonymous: pull serves clients without credentials', async (t) => {
  const registry = await startRegistry(t)
  const dir = await tempDir(t, 'pt-anon-')
  const image = await buildImage(join(dir, 'oci'), { layers: [1024], tag: 'v1' })
  await registry.pushImage(image, 'team/tool:v1')
  const htpasswd = join(dir, 'htpasswd')
  await writeFile(htpasswd, htpasswdLine('alice', PASSWORDS.alice))
  const app = await startApp(t, {
    yaml: `docker:
  registries:
    - { name: docker.io, default: true, anonymous: pull, upstreams: [{ url: "${registry.url}" }] }
    - { name: ghcr.io, upstreams: [{ url: "${registry.url}" }] }
pypi: { indexes: [] }
auth: { htpasswd: ${htpasswd} }
`,
  })
  const open = new URL(app.url).host
  // skopeo meets the /v2/ challenge, asks /-/token without credentials, and pulls with that token.
  t.equal((await inspectManifest(t, `${open}/team/tool:v1`)).digest, image.digest)
  await t.rejects(
    inspectManifest(t, `${open}/ghcr.io/team/tool:v1`),
    /unauthorized|authentication required/i,
    'the other registry still wants a sign-in',
  )
  // With auth on, what no rule names and no anonymous: pull opens is refused to everyone.
  await t.rejects(
    inspectManifest(t, `${open}/ghcr.io/team/tool:v1`, `alice:${PASSWORDS.alice}`),
    /denied/i,
  )
})
