/**
 * Fill leases on a real Redis: one replica owns a blob's fill and the others
 * are told where it is; a released lease is free again; a failed owner's
 * lease is taken over only once it lapses; without Redis each replica
 * fetches alone instead of failing.
 */
import t from 'tap'
import { FILL_LEASE_TTL_MS, FillLeases } from '../../src/cluster/fill-leases.ts'
import { createLogger } from '../../src/observability/logger.ts'
import { LogCapture } from '../helpers/log-capture.ts'
import { redisStore, startRedis } from '../helpers/redis-server.ts'

const DIGEST = `sha256:${'ab'.repeat(32)}`

t.test('one owner per blob; the others learn where it is', async (t) => {
  const redis = await startRedis(t)
  const metadata = await redisStore(t, redis.url)
  const logger = createLogger({ level: 'warn', destination: new LogCapture() })
  const a = new FillLeases(metadata, 'http://10.0.0.1:5001', logger)
  const b = new FillLeases(metadata, 'http://10.0.0.2:5001', logger)
  const owned = await a.claim(DIGEST)
  t.equal(owned.kind, 'own', 'the first claim owns the fill')
  t.same(
    await b.claim(DIGEST),
    { kind: 'peer', url: 'http://10.0.0.1:5001' },
    'the next is sent to it',
  )
  const other = await b.claim(`sha256:${'cd'.repeat(32)}`)
  t.equal(other.kind, 'own', 'another blob is another lease')
  if (owned.kind === 'own') owned.release()
  if (other.kind === 'own') other.release()
  // The release is sent without waiting; the next claim sees it once Redis has it.
  let next = await b.claim(DIGEST)
  for (let i = 0; i < 20 && next.kind !== 'own'; i++) next = await b.claim(DIGEST)
  t.equal(next.kind, 'own', 'released, the lease is free')
  if (next.kind === 'own') next.release()
})

t.test('a takeover waits for the failed owner’s lease to lapse', async (t) => {
  const redis = await startRedis(t)
  const metadata = await redisStore(t, redis.url)
  const logger = createLogger({ level: 'warn', destination: new LogCapture() })
  const dead = 'http://10.0.0.1:5001'
  // The owner took the lease and died: nobody renews it.
  t.ok(await metadata.acquireLease(`fill:${DIGEST}`, `${dead} gone`, { ttlMs: FILL_LEASE_TTL_MS }))
  const takenAt = performance.now()
  const b = new FillLeases(metadata, 'http://10.0.0.2:5001', logger)
  const c = new FillLeases(metadata, 'http://10.0.0.3:5001', logger)
  const signal = new AbortController().signal
  const [first, second] = await Promise.all([
    b.takeOver(DIGEST, dead, signal),
    c.takeOver(DIGEST, dead, signal),
  ])
  const waited = performance.now() - takenAt
  t.ok(waited >= FILL_LEASE_TTL_MS - 50, `not before the lease lapsed (${Math.round(waited)} ms)`)
  t.ok(waited < FILL_LEASE_TTL_MS + 1000, 'soon after')
  const kinds = [first.kind, second.kind].sort()
  t.same(kinds, ['own', 'peer'], 'one takes the fill over, the other follows it')
  const follower = first.kind === 'peer' ? first : second
  t.match(follower, { url: /^http:\/\/10\.0\.0\.[23]:5001$/ })
  for (const claim of [first, second]) if (claim.kind === 'own') claim.release()
})

t.test('Redis down: the replica fetches alone and says so', async (t) => {
  const redis = await startRedis(t)
  const metadata = await redisStore(t, redis.url)
  const logs = new LogCapture()
  const leases = new FillLeases(
    metadata,
    'http://10.0.0.1:5001',
    createLogger({ level: 'warn', destination: logs }),
  )
  await redis.kill()
  const claim = await leases.claim(DIGEST)
  t.equal(claim.kind, 'own', 'no error: the blob is fetched here')
  t.ok(
    logs.raw.some((l) => /fetching this blob without asking the other replicas/.test(l)),
    'and the log says why',
  )
})
