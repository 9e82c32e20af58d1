/**
 * htpasswd and groups files, the verified-pair memory, registry tokens (expiry,
 * tampering, another key), the signing key (generated once, shared, refused
 * when not P-256) and Authorization headers.
 */
import { generateKeyPairSync } from 'node:crypto'
import { readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import bcrypt from 'bcryptjs'
import t from 'tap'
import {
  HtpasswdUsers,
  parseGroups,
  parseHtpasswd,
  VERIFIED_TTL_MS,
} from '../../src/auth/htpasswd.ts'
import { parseAuthorization } from '../../src/auth/identity.ts'
import { parseScope, RegistryTokens } from '../../src/auth/registry-token.ts'
import { GENERATED_KEY_PATH, loadSigningKey } from '../../src/auth/signing-key.ts'
import { tempDir } from '../helpers/config.ts'

const hash = (password: string) => bcrypt.hashSync(password, 4).replace(/^\$2b\$/, '$2y$')

t.test('htpasswd: bcrypt lines, comments; other hashes and bad lines named', async (t) => {
  const users = parseHtpasswd(`# team\n\nalice:${hash('a')}\r\nbob:${hash('b')}\n`)
  t.same([...users.keys()], ['alice', 'bob'])
  t.throws(() => parseHtpasswd('carol:$apr1$abc$def\n'), /line 1 \(user carol\): only bcrypt/)
  t.throws(
    () => parseHtpasswd(`alice:${hash('a')}\nnocolon\n`),
    /line 2: expected "user:bcrypt-hash"/,
  )
  t.throws(() => parseHtpasswd(`alice:${hash('a')}\nalice:${hash('b')}\n`), /listed twice/)
  t.same(
    parseGroups('dev: alice bob\nops:alice\n# x\n'),
    new Map([
      ['alice', ['dev', 'ops']],
      ['bob', ['dev']],
    ]),
  )
  t.throws(() => parseGroups('just words\n'), /line 1: expected "group: user1 user2"/)
})

t.test(
  'a verified pair is remembered for a while, and forgotten when the hash changes',
  async (t) => {
    let now = 1_000_000
    let file = new Map([['alice', hash('right')]])
    let compares = 0
    const original = bcrypt.compare.bind(bcrypt)
    t.teardown(() => {
      bcrypt.compare = original
    })
    bcrypt.compare = async (password: string, h: string) => {
      compares++
      return original(password, h)
    }
    const users = new HtpasswdUsers(
      { users: async () => file, groups: async () => new Map([['alice', ['dev']]]) },
      () => now,
    )
    t.same(await users.verify('alice', 'right'), { name: 'alice', groups: ['dev'] })
    t.same(await users.verify('alice', 'right'), { name: 'alice', groups: ['dev'] })
    t.equal(compares, 1, 'the second check costs no bcrypt')
    t.equal(await users.verify('alice', 'wrong'), undefined)
    t.equal(await users.verify('alice', 'wrong'), undefined)
    t.equal(compares, 3, 'wrong passwords are never remembered')
    t.equal(await users.verify('nobody', 'right'), undefined)
    t.equal(compares, 4, 'an unknown user costs a bcrypt too')
    now += VERIFIED_TTL_MS
    await users.verify('alice', 'right')
    t.equal(compares, 5, 'checked again after VERIFIED_TTL_MS')
    file = new Map([['alice', hash('new')]])
    t.equal(
      await users.verify('alice', 'right'),
      undefined,
      'a changed password ends the old one at once',
    )
  },
)

t.test('registry tokens: grants, expiry, tampering, a foreign key', async (t) => {
  const dir = await tempDir(t, 'pt-tokens-')
  const key = await loadSigningKey(undefined, dir)
  let now = Date.UTC(2026, 0, 1)
  const tokens = new RegistryTokens(key, 60_000, () => now)
  const grant = { type: 'repository', name: 'library/app', actions: ['pull'] }
  const token = await tokens.issue({ name: 'alice', groups: ['dev'] }, [grant])
  t.same(await tokens.verify(token), {
    identity: { name: 'alice', groups: ['dev'] },
    access: [grant],
    admin: false,
  })
  const anonymous = await tokens.issue(undefined, [])
  t.same(await tokens.verify(anonymous), { identity: undefined, access: [], admin: false })
  now += 60_000 + 29_000
  t.ok(await tokens.verify(token), 'within the 30 s clock tolerance')
  now += 2_000
  t.equal(await tokens.verify(token), undefined, 'expired')
  now = Date.UTC(2026, 0, 1)
  const [h, p, s] = token.split('.') as [string, string, string]
  const payload = JSON.parse(Buffer.from(p, 'base64url').toString()) as Record<string, unknown>
  const altered = Buffer.from(JSON.stringify({ ...payload, admin: true })).toString('base64url')
  t.equal(await tokens.verify(`${h}.${altered}.${s}`), undefined, 'a changed claim')
  t.equal(await tokens.verify(`${h}.${p}.`), undefined, 'no signature')
  const none = Buffer.from(JSON.stringify({ alg: 'none', typ: 'JWT' })).toString('base64url')
  t.equal(await tokens.verify(`${none}.${p}.`), undefined, 'alg none')
  const other = new RegistryTokens(
    await loadSigningKey(undefined, await tempDir(t)),
    60_000,
    () => now,
  )
  t.equal(await other.verify(token), undefined, "another server's key")
  t.equal(await tokens.verify('not.a.token'), undefined)
  t.same(parseScope('repository:ghcr.io/org/app:pull,push'), {
    type: 'repository',
    name: 'ghcr.io/org/app',
    actions: ['pull', 'push'],
  })
  t.same(parseScope('repository:localhost:5000/app:pull')?.name, 'localhost:5000/app')
  t.equal(parseScope('nonsense'), undefined)
})

t.test('the signing key: generated once and kept, or read; not P-256 is refused', async (t) => {
  const dir = await tempDir(t, 'pt-key-')
  const [a, b] = await Promise.all([loadSigningKey(undefined, dir), loadSigningKey(undefined, dir)])
  t.ok(a.publicKey.equals(b.publicKey), 'two starting at once agree on one key')
  const path = join(dir, GENERATED_KEY_PATH)
  t.equal((await stat(path)).mode & 0o777, 0o600)
  const again = await loadSigningKey(undefined, dir)
  t.ok(again.publicKey.equals(a.publicKey), 'kept across restarts')
  const own = await loadSigningKey(path, await tempDir(t))
  t.ok(own.publicKey.equals(a.publicKey), 'auth.signingKey is read')
  const rsa = join(dir, 'rsa.pem')
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 })
  await writeFile(rsa, privateKey.export({ type: 'pkcs8', format: 'pem' }))
  await t.rejects(loadSigningKey(rsa, dir), /auth.signingKey: must be an EC P-256 key/)
  await writeFile(rsa, 'garbage')
  await t.rejects(loadSigningKey(rsa, dir), /auth.signingKey: not a PEM private key/)
  await t.rejects(
    loadSigningKey(join(dir, 'missing.pem'), dir),
    /auth.signingKey: cannot read the file \(ENOENT\)/,
  )
  t.match(await readFile(path, 'utf8'), /^-----BEGIN PRIVATE KEY-----/)
})

t.test('Authorization headers', async (t) => {
  const b64 = (s: string) => Buffer.from(s).toString('base64')
  t.same(parseAuthorization(`Basic ${b64('alice:pa:ss')}`), {
    kind: 'basic',
    user: 'alice',
    password: 'pa:ss',
  })
  t.same(parseAuthorization('bearer abc.def'), { kind: 'bearer', token: 'abc.def' })
  t.equal(parseAuthorization(undefined), undefined)
  t.equal(parseAuthorization(''), undefined)
  t.equal(parseAuthorization(`Basic ${b64(':nouser')}`), 'malformed')
  t.equal(parseAuthorization(`Basic ${b64('nocolon')}`), 'malformed')
  t.equal(parseAuthorization('Basic !!!'), 'malformed')
  t.equal(parseAuthorization('Digest x'), 'malformed')
  t.equal(parseAuthorization(`Bearer ${'a'.repeat(9000)}`), 'malformed')
})
