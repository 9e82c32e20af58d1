/**
 * One leader for scheduled work. In process, on a real Redis: one holder at
 * a time, takeover once a holder stops renewing, stepping down before the
 * lease can lapse when the store does not answer, a clean stop handing over
 * at once. Then two real `pullthrough serve` processes: the leader is
 * SIGKILLed and the other takes over, timed.
 */
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { request } from 'undici'
import { LEADER_HEARTBEAT_MS, LEADER_TTL_MS, Leadership } from '../../src/metadata/leadership.ts'
import { CLI, cleanEnv, spawnNode, waitListening } from '../helpers/cli.ts'
import { tempDir } from '../helpers/config.ts'
import { freePort } from '../helpers/free-port.ts'
import { redisStore, startRedis } from '../helpers/redis-server.ts'

const quiet = { info: () => undefined, warn: () => undefined }
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

t.test('one leader at a time; a silent one is replaced, a clean stop hands over', async (t) => {
  const redis = await startRedis(t)
  const metadata = await redisStore(t, redis.url)
  const timing = { ttlMs: 600, heartbeatMs: 100 }
  const changes: string[] = []
  const a = new Leadership(metadata, {
    owner: 'a',
    logger: quiet,
    ...timing,
    onChange: (l) => changes.push(`a ${l}`),
  })
  const b = new Leadership(metadata, {
    owner: 'b',
    logger: quiet,
    ...timing,
    onChange: (l) => changes.push(`b ${l}`),
  })
  await a.tick()
  await b.tick()
  t.ok(a.isLeader())
  t.notOk(b.isLeader())
  await a.tick()
  t.ok(a.isLeader(), 'renewed')
  // a goes silent (a dead process renews nothing): b takes over once the lease lapses.
  const silentAt = Date.now()
  while (!b.isLeader() && Date.now() - silentAt < 5000) {
    await sleep(timing.heartbeatMs)
    await b.tick()
  }
  t.ok(b.isLeader())
  t.ok(Date.now() - silentAt >= timing.ttlMs - timing.heartbeatMs, 'not before the lease lapsed')
  t.notOk(a.isLeader(), 'the silent one stopped calling itself leader')
  await b.stop()
  await a.tick()
  t.ok(a.isLeader(), 'a clean stop hands over at the next try')
  t.same(changes, ['a true', 'b true', 'a false', 'b false', 'a true'])

  // The store stops answering: the leader steps down before its lease could lapse.
  await a.tick()
  const renewedAt = Date.now()
  redis.pause()
  const ticking = setInterval(() => void a.tick(), timing.heartbeatMs)
  while (a.isLeader() && Date.now() - renewedAt < 5000) await sleep(10)
  clearInterval(ticking)
  const after = Date.now() - renewedAt
  t.ok(after < timing.ttlMs, `stepped down ${after} ms after its last renewal`)
  redis.resume()
})

async function serve(t: Test, redisUrl: string) {
  const dir = await tempDir(t, 'pt-leader-')
  const config = join(dir, 'config.yaml')
  await writeFile(
    config,
    `server: { host: 127.0.0.1, port: ${await freePort()} }
storage: { path: "${join(dir, 'data')}" }
metadata: { redis: { url: "${redisUrl}" } }
log: { format: json }
`,
  )
  const child = spawnNode(t, CLI, ['serve', '--config', config], { env: cleanEnv() })
  const url = await waitListening(child)
  const leads = async () => {
    const res = await request(`${url}/metrics`).catch(() => undefined)
    const text = res ? await res.body.text() : ''
    return /^pullthrough_leader 1$/m.test(text)
  }
  return { child, leads }
}

t.test('two replicas: the leader is killed, the other takes over within the bounds', async (t) => {
  const redis = await startRedis(t)
  const first = await serve(t, redis.url)
  const second = await serve(t, redis.url)
  const deadline = Date.now() + 10_000
  while (!(await first.leads()) && !(await second.leads()) && Date.now() < deadline)
    await sleep(100)
  const [leader, other] = (await first.leads()) ? [first, second] : [second, first]
  t.ok(await leader.leads(), 'one leads')
  t.notOk(await other.leads(), 'the other does not')

  leader.child.kill('SIGKILL')
  const killedAt = Date.now()
  while (!(await other.leads()) && Date.now() - killedAt < 30_000) await sleep(50)
  const takeoverMs = Date.now() - killedAt
  t.comment(`took over ${takeoverMs} ms after the leader was killed (lease ${LEADER_TTL_MS} ms)`)
  t.ok(await other.leads(), 'the other replica leads now')
  // The lease lapses at most LEADER_TTL_MS after the kill; the other notices within a heartbeat.
  t.ok(takeoverMs <= LEADER_TTL_MS + LEADER_HEARTBEAT_MS + 1000, `within ${takeoverMs} ms`)
  t.ok(takeoverMs < 30_000)
})
