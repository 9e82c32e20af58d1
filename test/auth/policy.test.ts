import t from 'tap'
import { AccessPolicy, type PolicyConfig } from '../../src/auth/policy.ts'
import { configSchema } from '../../src/config/schema.ts'

function policy(yaml: Record<string, unknown>, anonymous: PolicyConfig['anonymous'] = new Map()) {
  const config = configSchema.parse(yaml)
  return new AccessPolicy({ ...config, anonymous })
}

const alice = { name: 'alice', groups: ['dev'] }
const bob = { name: 'bob', groups: [] }
const docker = (name: string, pool = 'docker.io') => ({ protocol: 'docker', pool, name }) as const
const pypi = (name: string | undefined, pool = 'pypi') =>
  ({ protocol: 'pypi', pool, name }) as const

t.test('without auth everything is allowed but what proxy rules refuse', async (t) => {
  const p = policy({
    proxy: [
      { registry: 'docker.io', allow: ['library/*'] },
      { index: '*', deny: ['Evil_*'] },
    ],
  })
  t.notOk(p.enabled)
  t.same(p.decide(undefined, docker('library/alpine')), { allowed: true })
  t.same(p.decide(undefined, docker('library/a/b')), {
    allowed: false,
    why: 'proxy',
    rule: 'proxy[0]',
  })
  t.same(p.decide(undefined, docker('other/app', 'ghcr.io')), { allowed: true }, 'other registry')
  // Patterns are PEP 503-normalized as names are: Evil_* refuses evil-pkg.
  t.same(p.decide(alice, pypi('evil-pkg')), { allowed: false, why: 'proxy', rule: 'proxy[1]' })
  t.same(p.decide(undefined, pypi(undefined)), { allowed: true }, 'the project list is no name')
})

t.test('access rules: first match wins, by user, group, * and anonymous', async (t) => {
  const p = policy({
    auth: { admins: { groups: ['dev'] } },
    access: [
      { registry: 'docker.io', repository: 'myorg/**', groups: ['dev'] },
      { registry: 'docker.io', repository: 'myorg/public', anonymous: true },
      { registry: '*', repository: 'library/*', users: ['*'] },
      { index: 'pypi', project: 'Internal.*', users: ['bob'] },
      { index: 'pypi', project: 'open', anonymous: true },
    ],
  })
  t.ok(p.enabled)
  t.same(p.decide(alice, docker('myorg/a/b')), { allowed: true })
  t.same(p.decide(bob, docker('myorg/a')), { allowed: false, why: 'forbidden', rule: 'access[0]' })
  // The second rule never decides: the first matches myorg/public already.
  t.same(p.decide(undefined, docker('myorg/public')), {
    allowed: false,
    why: 'sign-in',
    rule: 'access[0]',
  })
  t.same(p.decide(bob, docker('library/alpine', 'ghcr.io')), { allowed: true })
  t.same(p.decide(undefined, docker('library/alpine')), {
    allowed: false,
    why: 'sign-in',
    rule: 'access[2]',
  })
  t.same(p.decide(bob, pypi('internal-tools')), { allowed: true }, 'project globs are normalized')
  t.same(p.decide(alice, pypi('internal-tools')), {
    allowed: false,
    why: 'forbidden',
    rule: 'access[3]',
  })
  t.same(p.decide(undefined, pypi('open')), { allowed: true })
  // No rule: the registry's anonymous setting, default none.
  t.same(p.decide(alice, docker('nomatch/x')), {
    allowed: false,
    why: 'forbidden',
    rule: 'anonymous: none',
  })
  t.same(p.decide(undefined, pypi(undefined)), {
    allowed: false,
    why: 'sign-in',
    rule: 'anonymous: none',
  })
  t.same(p.decide(bob, pypi(undefined)), { allowed: true }, 'signed-in clients may list')
  t.ok(p.isAdmin(alice))
  t.notOk(p.isAdmin(bob))
  t.notOk(p.isAdmin(undefined))
})

t.test("a registry's anonymous: pull opens what no rule names", async (t) => {
  const p = policy(
    { auth: {}, access: [{ registry: 'docker.io', repository: 'private/**', users: ['alice'] }] },
    new Map([['docker.io', 'pull']]),
  )
  t.same(p.decide(undefined, docker('library/alpine')), { allowed: true })
  t.same(p.decide(undefined, docker('library/alpine', 'ghcr.io')), {
    allowed: false,
    why: 'sign-in',
    rule: 'anonymous: none',
  })
  t.same(p.decide(bob, docker('private/x')), {
    allowed: false,
    why: 'forbidden',
    rule: 'access[0]',
  })
})

t.test('the config refuses rules it cannot apply', async (t) => {
  const issues = (yaml: Record<string, unknown>) =>
    configSchema.safeParse(yaml).error?.issues.map((i) => `${i.path.join('.')}: ${i.message}`) ?? []
  t.match(issues({ access: [{ registry: 'docker.io', users: ['a'] }] }), [
    /^access: access rules need auth/,
  ])
  t.match(issues({ auth: {}, access: [{ users: ['a'] }] }), [
    /registry: set exactly one of registry, index/,
  ])
  t.match(issues({ auth: {}, access: [{ index: 'pypi', repository: 'x' }] }), [
    /repository: goes with registry/,
  ])
  t.match(issues({ proxy: [{ registry: 'docker.io', project: 'x' }] }), [/Unrecognized key/])
  t.match(issues({ auth: { tokenTTL: '1s' } }), [/tokenTTL: must be between 30s and 24h/])
  t.match(issues({ auth: { anonymous: 'push' } }), [/auth.anonymous/])
})
