import t from 'tap'
import { bearerChallenge, parseChallenges } from '../../src/upstream/auth/challenge.ts'

t.test('parses the Docker Hub bearer challenge', async (t) => {
  const c = bearerChallenge(
    'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull"',
  )
  t.same(c, {
    scheme: 'bearer',
    params: {
      realm: 'https://auth.docker.io/token',
      service: 'registry.docker.io',
      scope: 'repository:library/busybox:pull',
    },
  })
})

t.test('parses several challenges, unquoted values, escapes and odd spacing', async (t) => {
  const all = parseChallenges([
    'Basic realm="Registry Realm", Bearer realm=https://auth.example/token , service=reg, scope="a:b:pull,push"',
    'Bearer realm="with \\"quotes\\""',
  ])
  t.same(
    all.map((c) => c.scheme),
    ['basic', 'bearer', 'bearer'],
  )
  t.same(all[1]?.params, {
    realm: 'https://auth.example/token',
    service: 'reg',
    scope: 'a:b:pull,push',
  })
  t.equal(all[2]?.params.realm, 'with "quotes"')
})

t.test('returns nothing usable for a missing or malformed header', async (t) => {
  t.same(parseChallenges(undefined), [])
  t.equal(bearerChallenge('Basic realm="x"'), undefined)
  t.equal(bearerChallenge('Bearer service="no realm"'), undefined)
  t.same(parseChallenges('   '), [])
})
