/**
 * A metadata store reaching Redis through sentinels keeps reconnecting after
 * a failover whatever the timing. The race that once stopped it for good
 * (a CI run of the failover test): the primary dies, the client asks a
 * sentinel where the primary is now, and the sentinels' switch-master
 * announcement arrives before the answer. A fake sentinel sets that timing
 * up exactly; the primaries are real redis-servers.
 */
import t from 'tap'
import { RedisMetadataStore } from '../../src/metadata/redis-store.ts'
import { startFakeSentinel, type FakeSentinel } from '../helpers/fake-sentinel.ts'
import { startRedis } from '../helpers/redis-server.ts'

const MASTER_NAME = 'pt-primary'
/** The restart waits a second; what the store needs after that is a few milliseconds. */
const RECOVERY_LIMIT_MS = 5_000

/** A metadata store that finds its Redis through `sentinel` alone. */
const connectThrough = (sentinel: FakeSentinel) =>
  RedisMetadataStore.connect({
    url: 'redis://unused/0',
    sentinels: { masterName: MASTER_NAME, addresses: [sentinel.address] },
    connectTimeoutMs: 1000,
    commandTimeoutMs: 500,
  })

const record = (fetchedAt: number) => ({ digest: 'sha256:x', mediaType: 'm', size: 1, fetchedAt })

t.test('a switch-master announcement during a reconnect does not end the client', async (t) => {
  const first = await startRedis(t)
  const second = await startRedis(t)
  const sentinel = await startFakeSentinel(t, MASTER_NAME, first.port)
  const store = await connectThrough(sentinel)
  t.teardown(() => store.close())
  await store.putTag('docker.io', 'library/app', 'before', record(1))

  const asked = sentinel.hold()
  await first.kill()
  await asked
  // The client is waiting for the sentinel's answer: the failover is announced now.
  sentinel.announceSwitch()
  sentinel.primaryPort = second.port
  // Let the announcement reach the client before the answer does.
  await new Promise((resolve) => setTimeout(resolve, 100))
  sentinel.release()

  const started = Date.now()
  let wrote = false
  while (!wrote && Date.now() - started < RECOVERY_LIMIT_MS) {
    wrote = await store
      .putTag('docker.io', 'library/app', 'after', record(2))
      .then(() => true)
      .catch(() => false)
    if (!wrote) await new Promise((resolve) => setTimeout(resolve, 100))
  }
  t.ok(wrote, `writes resumed on the new primary (${Date.now() - started} ms)`)
  t.equal((await store.getTag('docker.io', 'library/app', 'after'))?.fetchedAt, 2, 'and read back')
})

t.test('a store closed on purpose stays closed', async (t) => {
  const redis = await startRedis(t)
  const sentinel = await startFakeSentinel(t, MASTER_NAME, redis.port)
  const store = await connectThrough(sentinel)
  await store.putTag('docker.io', 'library/app', 'before', record(1))
  const before = sentinel.connections()
  await store.close()
  // Past the restart delay: nothing connects again.
  await new Promise((resolve) => setTimeout(resolve, 1500))
  t.equal(sentinel.connections(), before, 'no new connection to the sentinel after close')
})
