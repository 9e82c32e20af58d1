/**
 * API tokens end to end: `pullthrough token create|list|revoke` against a
 * running server, the token used as skopeo's password and as a Bearer token,
 * its groups applied by the rules, expiry and revocation.
 */
import t from 'tap'
import { request } from 'undici'
import { securedRegistry } from '../helpers/access.ts'
import { startApp } from '../helpers/app.ts'
import { cliAgainst } from '../helpers/bundle.ts'
import { inspectManifest } from '../helpers/images.ts'

const ADMIN = 'admin-token-for-the-tests'

async function status(url: string, authorization: string) {
  const res = await request(url, {
    headers: { authorization, accept: 'application/vnd.oci.image.manifest.v1+json' },
  })
  await res.body.dump()
  return res.statusCode
}

t.test('a token made by the CLI signs a client in as its user and groups', async (t) => {
  const { app, host, digest } = await securedRegistry(t, `admin: { token: "${ADMIN}" }\n`)
  const secret = `${app.url}/v2/myorg/secret/manifests/v1`
  const made = await cliAgainst(t, app, ADMIN, [
    'token',
    'create',
    '--user',
    'ci',
    '--group',
    'dev',
    '--description',
    'nightly builds',
  ])
  t.equal(made.code, 0, made.stderr)
  const token = made.stdout.split('\n')[0] ?? ''
  t.match(token, /^ptk_[A-Za-z0-9_-]{43}$/)
  t.match(made.stdout, /signs in as ci \(groups dev\), until revoked/)
  t.notOk(JSON.stringify(app.logs.lines).includes(token), 'the token is never logged')

  // The group dev may pull myorg/**: as skopeo's password (any user name) and as a Bearer token.
  t.equal((await inspectManifest(t, `${host}/myorg/secret:v1`, `ci:${token}`)).digest, digest)
  t.equal((await inspectManifest(t, `${host}/myorg/secret:v1`, `whoever:${token}`)).digest, digest)
  t.equal(await status(secret, `Bearer ${token}`), 200)

  const listed = await cliAgainst(t, app, ADMIN, ['token', 'list', '--json'])
  t.equal(listed.code, 0, listed.stderr)
  const { items } = JSON.parse(listed.stdout) as { items: Record<string, unknown>[] }
  t.equal(items.length, 1)
  t.match(items[0], { user: 'ci', groups: ['dev'], description: 'nightly builds', expiresAt: null })
  t.notOk(listed.stdout.includes(token.slice(4)), 'the list never shows the secret')
  const table = await cliAgainst(t, app, ADMIN, ['token', 'list'])
  t.match(
    table.stdout,
    /^id\s+user\s+groups\s+created\s+expires\s+description\n\w{12}\s+ci\s+dev\s+\S+\s+never\s+nightly builds\n$/,
  )

  const id = String(items[0]?.id)
  const revoked = await cliAgainst(t, app, ADMIN, ['token', 'revoke', id])
  t.equal(revoked.code, 0, revoked.stderr)
  t.equal(await status(secret, `Bearer ${token}`), 401, 'revoked: refused at once here')
  const again = await cliAgainst(t, app, ADMIN, ['token', 'revoke', id])
  t.equal(again.code, 1)
  t.match(again.stderr, `no token has the id ${id}`)
})

t.test('a token with --expires-in stops working when it expires', async (t) => {
  const { app } = await securedRegistry(t, `admin: { token: "${ADMIN}" }\n`)
  const made = await cliAgainst(t, app, ADMIN, [
    'token',
    'create',
    '--user',
    'bob',
    '--expires-in',
    '2s',
    '--json',
  ])
  t.equal(made.code, 0, made.stderr)
  const { token, expiresAt } = JSON.parse(made.stdout) as { token: string; expiresAt: string }
  const url = `${app.url}/v2/library/app/manifests/v1`
  t.equal(await status(url, `Bearer ${token}`), 200)
  await new Promise((resolve) => setTimeout(resolve, Date.parse(expiresAt) - Date.now() + 100))
  t.equal(await status(url, `Bearer ${token}`), 401)
})

t.test('bad token commands say what is wrong', async (t) => {
  const { app } = await securedRegistry(t, `admin: { token: "${ADMIN}" }\n`)
  const noUser = await cliAgainst(t, app, ADMIN, ['token', 'create'])
  t.equal(noUser.code, 2)
  t.match(noUser.stderr, /token create needs --user/)
  const badAction = await cliAgainst(t, app, ADMIN, ['token', 'rotate'])
  t.equal(badAction.code, 2)
  t.match(badAction.stderr, /token takes create, list, revoke, not "rotate"/)
  const misplaced = await cliAgainst(t, app, ADMIN, ['token', 'list', '--user', 'x'])
  t.equal(misplaced.code, 2)
  t.match(misplaced.stderr, /--user goes with token create/)
  const badUser = await cliAgainst(t, app, ADMIN, ['token', 'create', '--user', 'a:b'])
  t.equal(badUser.code, 1)
  t.match(badUser.stderr, /user: must be 1-256 characters without ":" or spaces/)
  const badExpiry = await cliAgainst(t, app, ADMIN, [
    'token',
    'create',
    '--user',
    'a',
    '--expires-in',
    'soon',
  ])
  t.equal(badExpiry.code, 1)
  t.match(badExpiry.stderr, /expiresIn: must be a duration like 30d/)
  const wrongAdmin = await cliAgainst(t, app, 'not-the-admin-token', ['token', 'list'])
  t.equal(wrongAdmin.code, 1)
  t.match(wrongAdmin.stderr, /requires the admin token/)

  const open = await startApp(t, { yaml: `admin: { token: "${ADMIN}" }\n` })
  const withoutAuth = await cliAgainst(t, open, ADMIN, ['token', 'list'])
  t.equal(withoutAuth.code, 1)
  t.match(withoutAuth.stderr, /API tokens sign clients in only when auth is configured/)
})
