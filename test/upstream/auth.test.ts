import type { IncomingMessage, ServerResponse } from 'node:http'
import t, { type Test } from 'tap'
import { UpstreamAuthError } from '../../src/upstream/errors.ts'
import { fakeUpstream, serveBytes, type FakeUpstream } from '../helpers/fake-upstream.ts'
import { poolConfig, testPool } from '../helpers/pool.ts'

const BODY = Buffer.from('protected content')
const BASIC = `Basic ${Buffer.from('alice:s3cret-pw').toString('base64')}`

interface TokenServer {
  readonly server: FakeUpstream
  /** Tokens issued so far, by scope. */
  readonly issued: string[]
}

/** A token server like Docker Hub's: checks Basic credentials when sent, issues tokens that expire. */
async function tokenServer(t: Test, expiresIn = 300): Promise<TokenServer> {
  const issued: string[] = []
  const server = await fakeUpstream(t, (req, res) => {
    const url = new URL(req.url ?? '', 'http://x')
    if (req.headers.authorization !== undefined && req.headers.authorization !== BASIC) {
      res.writeHead(401).end()
      return
    }
    const token = `tok-${issued.length + 1}-${url.searchParams.get('scope') ?? ''}`
    issued.push(token)
    res.writeHead(200, { 'content-type': 'application/json' })
    res.end(JSON.stringify({ token, expires_in: expiresIn }))
  })
  return { server, issued }
}

/** A registry that wants a Bearer token from `realm` for every request. */
function protectedRegistry(realm: string, valid: (token: string) => boolean) {
  return (req: IncomingMessage, res: ServerResponse) => {
    const auth = req.headers.authorization ?? ''
    const token = auth.startsWith('Bearer ') ? auth.slice(7) : ''
    if (!valid(token)) {
      const scope = `repository:${(req.url ?? '').split('/')[2] ?? ''}:pull`
      res
        .writeHead(401, {
          'www-authenticate': `Bearer realm="${realm}/token",service="fake-registry",scope="${scope}"`,
        })
        .end()
      return
    }
    return serveBytes(BODY)(req, res)
  }
}

t.test(
  'the Bearer token flow: challenge, token per scope, cached for later requests',
  async (t) => {
    const tokens = await tokenServer(t)
    const registry = await fakeUpstream(t)
    registry.handle(protectedRegistry(tokens.server.url, (tok) => tokens.issued.includes(tok)))
    const { pool } = testPool(
      t,
      poolConfig([{ url: registry.url, username: 'alice', password: 's3cret-pw' }]),
    )

    const first = await pool.request({
      path: 'v2/app/blobs/x',
      kind: 'blob',
      expect: [200],
      authScope: 'repository:app:pull',
    })
    t.equal(await first.body.text(), BODY.toString())
    t.same(tokens.issued, ['tok-1-repository:app:pull'])
    const tokenRequest = tokens.server.requests[0]
    t.match(tokenRequest?.url, /service=fake-registry/)
    t.equal(tokenRequest?.headers.authorization, BASIC, 'credentials go to the token server')

    const second = await pool.request({
      path: 'v2/app/blobs/y',
      kind: 'blob',
      expect: [200],
      authScope: 'repository:app:pull',
    })
    await second.body.dump()
    t.equal(tokens.issued.length, 1, 'the cached token is reused')
    t.equal(
      registry.requests.at(-1)?.headers.authorization,
      'Bearer tok-1-repository:app:pull',
      'sent up front',
    )

    const other = await pool.request({
      path: 'v2/other/blobs/z',
      kind: 'blob',
      expect: [200],
      authScope: 'repository:other:pull',
    })
    await other.body.dump()
    t.same(
      tokens.issued,
      ['tok-1-repository:app:pull', 'tok-2-repository:other:pull'],
      'one token per scope',
    )
  },
)

t.test('anonymous token flow sends no credentials', async (t) => {
  const tokens = await tokenServer(t)
  const registry = await fakeUpstream(t)
  registry.handle(protectedRegistry(tokens.server.url, (tok) => tokens.issued.includes(tok)))
  const { pool } = testPool(t, poolConfig([registry.url]))
  const res = await pool.request({
    path: 'v2/app/manifests/latest',
    kind: 'document',
    expect: [200],
    authScope: 'repository:app:pull',
  })
  t.equal(res.status, 200)
  await res.body.dump()
  t.equal(tokens.server.requests[0]?.headers.authorization, undefined)
})

t.test('an expired token is replaced before it is used', async (t) => {
  const tokens = await tokenServer(t, 60)
  const registry = await fakeUpstream(t)
  registry.handle(protectedRegistry(tokens.server.url, (tok) => tokens.issued.includes(tok)))
  const { pool, advance } = testPool(t, poolConfig([registry.url]), { fakeClock: true })
  const req = {
    path: 'v2/app/blobs/x',
    kind: 'blob',
    expect: [200],
    authScope: 'repository:app:pull',
  } as const
  await (await pool.request(req)).body.dump()
  advance(50_000)
  await (await pool.request(req)).body.dump()
  t.equal(tokens.issued.length, 1, 'still valid after 50 s of 60')
  advance(5_000)
  const before = registry.count()
  await (await pool.request(req)).body.dump()
  t.equal(tokens.issued.length, 2, 'refreshed shortly before expiry')
  t.equal(
    registry.count() - before,
    2,
    'one 401 for the unauthenticated try, then the request with the new token',
  )
})

t.test('a token the registry rejects is refetched once, then the request succeeds', async (t) => {
  const tokens = await tokenServer(t)
  const registry = await fakeUpstream(t)
  let revoked = ''
  registry.handle(
    protectedRegistry(tokens.server.url, (tok) => tokens.issued.includes(tok) && tok !== revoked),
  )
  const { pool } = testPool(t, poolConfig([registry.url]))
  const req = {
    path: 'v2/app/blobs/x',
    kind: 'blob',
    expect: [200],
    authScope: 'repository:app:pull',
  } as const
  await (await pool.request(req)).body.dump()
  revoked = tokens.issued[0] ?? ''
  const res = await pool.request(req)
  t.equal(res.status, 200)
  await res.body.dump()
  t.equal(tokens.issued.length, 2)
})

t.test(
  'credentials the token server refuses give an auth error that names no secret',
  async (t) => {
    const tokens = await tokenServer(t)
    const registry = await fakeUpstream(t)
    registry.handle(protectedRegistry(tokens.server.url, () => false))
    const { pool, logs } = testPool(
      t,
      poolConfig([{ url: registry.url, username: 'alice', password: 'wrong-password' }]),
    )
    const error = await pool
      .request({ path: 'v2/app/blobs/x', kind: 'blob', expect: [200] })
      .catch((e: unknown) => e)
    t.type(error, UpstreamAuthError)
    t.notMatch((error as Error).message, /wrong-password|alice/)
    t.notMatch(logs.raw.join('\n'), /wrong-password/)
  },
)

t.test('a registry that keeps refusing a fresh token gives up after one retry', async (t) => {
  const tokens = await tokenServer(t)
  const registry = await fakeUpstream(t)
  registry.handle(protectedRegistry(tokens.server.url, () => false))
  const { pool } = testPool(t, poolConfig([registry.url]))
  await t.rejects(
    pool.request({ path: 'v2/app/blobs/x', kind: 'blob', expect: [200] }),
    UpstreamAuthError,
  )
  t.equal(registry.count(), 2, 'the anonymous try and one try with a token')
  t.equal(tokens.issued.length, 1)
})

t.test(
  'Basic credentials go to the upstream itself and never follow a redirect to another host',
  async (t) => {
    const cdn = await fakeUpstream(t, serveBytes(BODY))
    const origin = await fakeUpstream(t, (req, res) => {
      if (req.headers.authorization !== BASIC)
        res.writeHead(401, { 'www-authenticate': 'Basic realm="x"' }).end()
      else res.writeHead(307, { location: `${cdn.url}/blob-data?sig=1` }).end()
    })
    const { pool } = testPool(
      t,
      poolConfig([{ url: origin.url, username: 'alice', password: 's3cret-pw' }]),
    )
    const res = await pool.request({ path: 'v2/app/blobs/x', kind: 'blob', expect: [200] })
    t.equal(await res.body.text(), BODY.toString())
    t.equal(res.url, `${cdn.url}/blob-data?sig=1`)
    t.equal(origin.requests[0]?.headers.authorization, BASIC)
    t.equal(cdn.requests[0]?.headers.authorization, undefined, 'no Authorization to the CDN')
  },
)

t.test('a Bearer token never follows a redirect to another host either', async (t) => {
  const tokens = await tokenServer(t)
  const cdn = await fakeUpstream(t, serveBytes(BODY))
  const registry = await fakeUpstream(t)
  const guarded = protectedRegistry(tokens.server.url, (tok) => tokens.issued.includes(tok))
  registry.handle((req, res) => {
    if (!req.headers.authorization) return guarded(req, res)
    res.writeHead(302, { location: `${cdn.url}/data` }).end()
  })
  const { pool } = testPool(t, poolConfig([registry.url]))
  const res = await pool.request({ path: 'v2/app/blobs/x', kind: 'blob', expect: [200] })
  t.equal(await res.body.text(), BODY.toString())
  t.equal(cdn.requests[0]?.headers.authorization, undefined)
})

t.test('redirect loops are bounded and fail over', async (t) => {
  const loop = await fakeUpstream(t)
  loop.handle((req, res) => res.writeHead(302, { location: `${loop.url}${req.url ?? ''}x` }).end())
  const good = await fakeUpstream(t, serveBytes(BODY))
  const { pool, metrics } = testPool(t, poolConfig([loop.url, good.url]))
  const res = await pool.request({ path: 'a', kind: 'document', expect: [200] })
  t.equal(await res.body.text(), BODY.toString())
  t.equal(loop.count(), 6, 'the first request and five redirects')
  const { values } = await metrics.upstreamErrors.get()
  t.equal(values.find((v) => v.labels.reason === 'redirect')?.value, 1)
})
