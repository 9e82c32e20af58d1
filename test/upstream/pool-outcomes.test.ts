import t from 'tap'
import {
  UpstreamAuthError,
  UpstreamNotFoundError,
  UpstreamStatusError,
} from '../../src/upstream/errors.ts'
import { fakeUpstream, serveBytes } from '../helpers/fake-upstream.ts'
import { metricValue, poolConfig, testPool } from '../helpers/pool.ts'

const BODY = Buffer.from('the content')

t.test('404 on every mirror is UpstreamNotFoundError naming the first that said so', async (t) => {
  const a = await fakeUpstream(t)
  const b = await fakeUpstream(t, (_req, res) => res.writeHead(410).end())
  const { pool, metrics } = testPool(t, poolConfig([a.url, b.url]))
  const error: unknown = await pool
    .request({
      path: 'v2/x/blobs/d?sig=secret',
      kind: 'blob',
      expect: [200],
      tryNextOnNotFound: true,
    })
    .catch((e: unknown) => e)
  t.type(error, UpstreamNotFoundError)
  const notFound = error as UpstreamNotFoundError
  t.equal(notFound.upstream, a.url)
  t.equal(notFound.path, 'v2/x/blobs/d', 'the query (a presigned signature) is left out')
  t.notMatch(notFound.message, /secret/)
  t.equal(a.count(), 1)
  t.equal(b.count(), 1, 'the next mirror was asked')
  t.equal(await metricValue(metrics.upstreamErrors), 0, 'not found is not an upstream error')
})

t.test('without tryNextOnNotFound the first 404 is the answer', async (t) => {
  const a = await fakeUpstream(t)
  const b = await fakeUpstream(t, serveBytes(BODY))
  const { pool } = testPool(t, poolConfig([a.url, b.url]))
  await t.rejects(
    pool.request({ path: 'v2/x/tags/list', kind: 'document', expect: [200] }),
    UpstreamNotFoundError,
  )
  t.equal(b.count(), 0, 'the next mirror is not asked')
})

t.test('a 404 on one mirror and the content on the next gives the content', async (t) => {
  const a = await fakeUpstream(t)
  const b = await fakeUpstream(t, serveBytes(BODY))
  const { pool } = testPool(t, poolConfig([a.url, b.url]))
  const res = await pool.request({
    path: 'x',
    kind: 'blob',
    expect: [200],
    tryNextOnNotFound: true,
  })
  t.equal(await res.body.text(), BODY.toString())
})

t.test('403 is UpstreamAuthError at once, and does not count against the mirror', async (t) => {
  const a = await fakeUpstream(t, (_req, res) => res.writeHead(403).end('no'))
  const b = await fakeUpstream(t, serveBytes(BODY))
  const { pool, metrics } = testPool(t, poolConfig([a.url, b.url], { breaker: { failures: 1 } }))
  const error: unknown = await pool
    .request({ path: 'x', kind: 'document', expect: [200] })
    .catch((e: unknown) => e)
  t.type(error, UpstreamAuthError)
  t.match(error, { status: 403, upstream: a.url })
  t.equal(b.count(), 0)
  t.ok(pool.mirrors[0]?.isAvailable(), 'the circuit stays closed')
  t.equal(await metricValue(metrics.upstreamCircuitOpen), 0)
})

t.test('401 without a way to authenticate on every mirror is UpstreamAuthError', async (t) => {
  const a = await fakeUpstream(t, (_req, res) => res.writeHead(401).end())
  const b = await fakeUpstream(t, (_req, res) => res.writeHead(401).end())
  const { pool } = testPool(t, poolConfig([a.url, b.url], { breaker: { failures: 1 } }))
  const error: unknown = await pool
    .request({ path: 'x', kind: 'document', expect: [200] })
    .catch((e: unknown) => e)
  t.type(error, UpstreamAuthError)
  t.match(error, { status: 401 })
  t.equal(b.count(), 1, 'a 401 with no challenge moves on, as before')
  t.ok(pool.mirrors[0]?.isAvailable(), 'the circuit stays closed')
})

t.test('a 400 outside `expect` is UpstreamStatusError; no other mirror is asked', async (t) => {
  const a = await fakeUpstream(t, (_req, res) => res.writeHead(400).end('bad request body'))
  const b = await fakeUpstream(t, serveBytes(BODY))
  const { pool, metrics } = testPool(t, poolConfig([a.url, b.url], { breaker: { failures: 1 } }))
  const error: unknown = await pool
    .request({ path: 'x', kind: 'document', expect: [200], tryNextOnNotFound: true })
    .catch((e: unknown) => e)
  t.type(error, UpstreamStatusError)
  t.match(error, { status: 400, upstream: a.url, pool: 'test-pool', code: 'PT_UPSTREAM_STATUS' })
  t.equal(b.count(), 0, 'the mirror answered: its answer stands')
  t.ok(pool.mirrors[0]?.isAvailable(), 'an answer does not open the circuit')
  t.equal(await metricValue(metrics.upstreamErrors), 0)
})

t.test('a status the caller expects is returned, 304 included', async (t) => {
  const a = await fakeUpstream(t, (_req, res) => res.writeHead(304, { etag: '"v1"' }).end())
  const { pool } = testPool(t, poolConfig([a.url]))
  const res = await pool.request({
    path: 'requests/',
    kind: 'document',
    expect: [200, 304],
    headers: { 'if-none-match': '"v1"' },
  })
  t.equal(res.status, 304)
  await res.body.dump()
  await t.rejects(
    pool.request({ path: 'requests/', kind: 'document', expect: [200] }),
    UpstreamStatusError,
    'the same 304 is an error for a caller that cannot use it',
  )
})
