/**
 * The trust boundary with upstreams, fault by fault: where a redirect, a 401
 * challenge or an upstream-given path may take pullthrough, and where the
 * upstream's credentials may go. Every refusal is a warn line with the pool,
 * the upstream and the target's origin only, and a count in
 * pullthrough_upstream_redirects_refused_total.
 */
import t, { type Test } from 'tap'
import { UpstreamAuthError, UpstreamUnavailableError } from '../../src/upstream/errors.ts'
import type { ResolvedAddress } from '../../src/upstream/addresses.ts'
import { fakeUpstream, serveBytes } from '../helpers/fake-upstream.ts'
import { metricValue, poolConfig, testPool, type TestPool } from '../helpers/pool.ts'
import { tlsUpstream } from '../helpers/tls-upstream.ts'

const BODY = Buffer.from('blob bytes from the CDN')
const USER = { username: 'alice', password: 's3cret-pw-123' }
const BASIC = `Basic ${Buffer.from('alice:s3cret-pw-123').toString('base64')}`
/** Long enough that a connection attempt to a black-holed address would show. */
const SLOW_CONNECT = { connect: 20_000, headers: 20_000 }
/** A refusal made before connecting returns far sooner than SLOW_CONNECT. */
const FAST_MS = 5_000

async function refused(pool: TestPool, labels: Record<string, string>): Promise<number> {
  return metricValue(pool.metrics.upstreamRedirectsRefused, labels)
}

function refusalLines(pool: TestPool): Record<string, unknown>[] {
  return pool.logs.lines.filter((l) => l.msg === 'upstream redirect refused')
}

/** A port number from `http://127.0.0.1:PORT`. */
function portOf(url: string): string {
  return new URL(url).port
}

t.test(
  'redirects to link-local, private and CGNAT addresses are refused at once, logged and counted, and the next mirror answers',
  async (t) => {
    for (const target of [
      'http://169.254.169.254/latest/meta-data/iam/security-credentials/',
      'http://10.0.0.1/internal',
      'http://100.64.0.1/x',
      'http://[::ffff:169.254.169.254]/latest/meta-data/',
      'http://[fd00::1]/x',
      'http://[fe80::1]/x',
    ]) {
      await t.test(target, async (t) => {
        const hostile = await fakeUpstream(t, (_req, res) =>
          res.writeHead(302, { location: target }).end(),
        )
        const good = await fakeUpstream(t, serveBytes(BODY))
        const pool = testPool(
          t,
          poolConfig([{ url: hostile.url, ...USER }, good.url], { timeouts: SLOW_CONNECT }),
        )
        const started = Date.now()
        const res = await pool.pool.request({ path: 'v2/app/blobs/x', kind: 'blob', expect: [200] })
        t.equal(await res.body.text(), BODY.toString(), 'the next mirror answered')
        t.ok(Date.now() - started < FAST_MS, 'no connection was attempted')
        t.equal(await refused(pool, { upstream: hostile.url, reason: 'address' }), 1)
        t.equal(
          await metricValue(pool.metrics.upstreamErrors, {
            upstream: hostile.url,
            reason: 'redirect',
          }),
          1,
        )
        const [line] = refusalLines(pool)
        t.match(line, {
          level: 40,
          pool: 'test-pool',
          upstream: hostile.url,
          reason: 'address',
          target: new URL(target).origin,
        })
        t.notMatch(JSON.stringify(line), /latest|meta-data|internal/, 'the origin only')
      })
    }
  },
)

t.test(
  'a redirect to another loopback port from a loopback upstream is followed, without credentials or userinfo',
  async (t) => {
    const cdn = await fakeUpstream(t, serveBytes(BODY))
    const origin = await fakeUpstream(t, (_req, res) =>
      res
        .writeHead(307, {
          location: `http://mallory:pw-in-url@127.0.0.1:${portOf(cdn.url)}/blob?sig=1`,
        })
        .end(),
    )
    const pool = testPool(t, poolConfig([{ url: origin.url, ...USER }]))
    const res = await pool.pool.request({ path: 'v2/app/blobs/x', kind: 'blob', expect: [200] })
    t.equal(await res.body.text(), BODY.toString())
    t.equal(origin.requests[0]?.headers.authorization, BASIC, 'the upstream got its credentials')
    t.equal(cdn.requests[0]?.headers.authorization, undefined, 'the CDN got no Authorization')
    t.equal(res.url, `${cdn.url}/blob?sig=1`, 'the final URL keeps its query, not the userinfo')
    t.equal(await refused(pool, {}), 0)
  },
)

t.test('an https upstream never redirects pullthrough to http', async (t) => {
  const plain = await fakeUpstream(t, serveBytes(BODY))
  const secure = await tlsUpstream(t, (_req, res) =>
    res.writeHead(302, { location: `${plain.url}/blob` }).end(),
  )
  const pool = testPool(t, poolConfig([{ url: secure.url, ...USER }]), {
    network: { ca: secure.ca },
  })
  await t.rejects(
    pool.pool.request({ path: 'v2/app/blobs/x', kind: 'blob', expect: [200] }),
    UpstreamUnavailableError,
  )
  t.equal(secure.requests[0]?.headers.authorization, BASIC, 'the https upstream was asked')
  t.equal(plain.requests.length, 0, 'nothing was sent over http')
  t.equal(await refused(pool, { reason: 'downgrade' }), 1)
  t.match(refusalLines(pool)[0], { reason: 'downgrade', target: plain.url })
})

t.test(
  'an https upstream may redirect to another https host, which gets no credentials',
  async (t) => {
    const cdn = await tlsUpstream(t, serveBytes(BODY))
    const secure = await tlsUpstream(t, (_req, res) =>
      res.writeHead(307, { location: `${cdn.url}/blob` }).end(),
    )
    const pool = testPool(t, poolConfig([{ url: secure.url, ...USER }]), {
      network: { ca: Buffer.concat([secure.ca, cdn.ca]) },
    })
    const res = await pool.pool.request({ path: 'v2/app/blobs/x', kind: 'blob', expect: [200] })
    t.equal(await res.body.text(), BODY.toString())
    t.equal(secure.requests[0]?.headers.authorization, BASIC)
    t.equal(cdn.requests[0]?.headers.authorization, undefined)
  },
)

t.test(
  "an https upstream's challenge naming an http realm is refused: credentials never go over http",
  async (t) => {
    const tokens = await fakeUpstream(t, (_req, res) =>
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"token":"t"}'),
    )
    const secure = await tlsUpstream(t, (_req, res) =>
      res
        .writeHead(401, { 'www-authenticate': `Bearer realm="${tokens.url}/token",service="s"` })
        .end(),
    )
    const pool = testPool(t, poolConfig([{ url: secure.url, ...USER }]), {
      network: { ca: secure.ca },
    })
    await t.rejects(
      pool.pool.request({ path: 'v2/app/manifests/latest', kind: 'document', expect: [200] }),
      UpstreamUnavailableError,
    )
    t.equal(tokens.requests.length, 0, 'the http realm was never asked')
    t.equal(await refused(pool, { reason: 'realm_downgrade' }), 1)
  },
)

t.test(
  "a 401 from a redirect hop on another origin is not honoured with the upstream's credentials",
  async (t) => {
    const evil = await fakeUpstream(t, (_req, res) =>
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"token":"t"}'),
    )
    const cdn = await fakeUpstream(t, (_req, res) =>
      res
        .writeHead(401, { 'www-authenticate': `Bearer realm="${evil.url}/token",service="cdn"` })
        .end(),
    )
    const origin = await fakeUpstream(t, (req, res) => {
      if (req.headers.authorization !== BASIC) res.writeHead(401).end()
      else res.writeHead(307, { location: `${cdn.url}/blob` }).end()
    })
    const pool = testPool(t, poolConfig([{ url: origin.url, ...USER }]))
    await t.rejects(
      pool.pool.request({ path: 'v2/app/blobs/x', kind: 'blob', expect: [200] }),
      UpstreamAuthError,
    )
    t.equal(evil.requests.length, 0, 'the realm the CDN named was never asked')
    t.equal(cdn.requests[0]?.headers.authorization, undefined)
    t.equal(await refused(pool, { reason: 'foreign_challenge' }), 1)
    t.match(refusalLines(pool)[0], { target: cdn.url })
  },
)

t.test('a token realm on a link-local address is refused without a connection', async (t) => {
  const registry = await fakeUpstream(t, (_req, res) =>
    res
      .writeHead(401, {
        'www-authenticate': 'Bearer realm="http://169.254.169.254/token",service="s"',
      })
      .end(),
  )
  const good = await fakeUpstream(t, serveBytes(BODY))
  const pool = testPool(
    t,
    poolConfig([{ url: registry.url, ...USER }, good.url], { timeouts: SLOW_CONNECT }),
  )
  const started = Date.now()
  const res = await pool.pool.request({
    path: 'v2/app/manifests/latest',
    kind: 'document',
    expect: [200],
  })
  t.equal(await res.body.text(), BODY.toString())
  t.ok(Date.now() - started < FAST_MS, 'no connection was attempted')
  t.equal(await refused(pool, { reason: 'realm_address', upstream: registry.url }), 1)
  t.match(refusalLines(pool)[0], { target: 'http://169.254.169.254' })
})

t.test('with redirectHosts set, cross-origin redirects go only to the listed hosts', async (t) => {
  const cdn = await fakeUpstream(t, serveBytes(BODY))
  const origin = await fakeUpstream(t, (_req, res) =>
    res.writeHead(302, { location: `${cdn.url}/blob` }).end(),
  )
  const pool = testPool(
    t,
    poolConfig([{ url: origin.url, redirectHosts: ['cdn.example.com', '*.cdn.example.net'] }]),
  )
  await t.rejects(
    pool.pool.request({ path: 'v2/app/blobs/x', kind: 'blob', expect: [200] }),
    UpstreamUnavailableError,
  )
  t.equal(cdn.requests.length, 0)
  t.equal(await refused(pool, { reason: 'host_not_allowed' }), 1)
})

t.test('a host listed in redirectHosts is trusted past the address rule', async (t) => {
  const cdn = await fakeUpstream(t, serveBytes(BODY))
  // 0.0.0.0 is the unspecified address, another class than the loopback upstream's;
  // on Linux a connection to it reaches the local listener.
  const origin = await fakeUpstream(t, (_req, res) =>
    res.writeHead(302, { location: `http://0.0.0.0:${portOf(cdn.url)}/blob` }).end(),
  )
  const unlisted = testPool(t, poolConfig([origin.url]))
  await t.rejects(
    unlisted.pool.request({ path: 'v2/app/blobs/x', kind: 'blob', expect: [200] }),
    UpstreamUnavailableError,
  )
  t.equal(cdn.requests.length, 0, 'refused without the list')
  t.equal(await refused(unlisted, { reason: 'address' }), 1)

  const listed = testPool(t, poolConfig([{ url: origin.url, redirectHosts: ['0.0.0.0'] }]))
  const res = await listed.pool.request({ path: 'v2/app/blobs/x', kind: 'blob', expect: [200] })
  t.equal(await res.body.text(), BODY.toString(), 'followed once the operator lists it')
})

t.test(
  'a host name is judged at every connect, so DNS rebinding cannot reach a link-local address',
  async (t) => {
    // Each answer opens a new connection, so each request resolves the name again.
    const cdn = await fakeUpstream(t, serveBytes(BODY, { headers: { connection: 'close' } }))
    const origin = await fakeUpstream(t, (_req, res) =>
      res.writeHead(302, { location: `http://cdn.test:${portOf(cdn.url)}/blob` }).end(),
    )
    const answers: ResolvedAddress[][] = [
      [{ address: '127.0.0.1', family: 4 }],
      [{ address: '169.254.169.254', family: 4 }],
    ]
    const resolveHost = async (hostname: string) => {
      if (hostname !== 'cdn.test') throw Object.assign(new Error('nope'), { code: 'ENOTFOUND' })
      return answers.shift() ?? []
    }
    const pool = testPool(t, poolConfig([origin.url], { timeouts: SLOW_CONNECT }), {
      network: { resolveHost },
    })
    const first = await pool.pool.request({ path: 'v2/app/blobs/x', kind: 'blob', expect: [200] })
    t.equal(await first.body.text(), BODY.toString(), 'a loopback answer is the upstream’s class')
    const started = Date.now()
    await t.rejects(
      pool.pool.request({ path: 'v2/app/blobs/x', kind: 'blob', expect: [200] }),
      UpstreamUnavailableError,
    )
    t.ok(Date.now() - started < FAST_MS, 'refused at lookup, not by a connect timeout')
    t.equal(cdn.requests.length, 1, 'the rebound name was never connected to')
    t.equal(await refused(pool, { reason: 'address' }), 1)
    t.match(refusalLines(pool)[0], { target: `http://cdn.test:${portOf(cdn.url)}` })
  },
)

t.test(
  "a path that resolves off the mirror's origin is refused before any request",
  async (t: Test) => {
    const other = await fakeUpstream(t, serveBytes(BODY))
    const origin = await fakeUpstream(t, serveBytes(Buffer.from('the upstream itself')))
    const pool = testPool(t, poolConfig([{ url: origin.url, ...USER }]))
    const host = `127.0.0.1:${portOf(other.url)}`
    for (const path of [`\\/${host}/v2/x`, `\\\\${host}/v2/x`, `http://${host}/v2/x`]) {
      await t.rejects(
        pool.pool.request({ path, kind: 'document', expect: [200] }),
        UpstreamUnavailableError,
        path,
      )
    }
    t.equal(other.requests.length, 0, 'the other host was never asked, nor given credentials')
    t.equal(origin.requests.length, 0)
    t.equal(await refused(pool, { reason: 'foreign_url' }), 3)
    t.match(refusalLines(pool)[0], { target: other.url })
  },
)

t.test('a failed attempt is logged with the path, never its query', async (t) => {
  const down = await fakeUpstream(t, (_req, res) => res.writeHead(503).end())
  const pool = testPool(t, poolConfig([down.url]))
  await t.rejects(
    pool.pool.request({
      path: 'packages/x-1.0.whl?X-Amz-Signature=presigned-s3cr3t&X-Amz-Credential=AKIA',
      kind: 'blob',
      expect: [200],
    }),
    UpstreamUnavailableError,
  )
  const line = pool.logs.lines.find((l) => l.msg === 'upstream attempt failed')
  t.match(line, { path: 'packages/x-1.0.whl' })
  t.notMatch(pool.logs.raw.join('\n'), /presigned-s3cr3t|AKIA/)
})
