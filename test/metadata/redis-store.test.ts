import t, { type Test } from 'tap'
import { MetadataUnavailableError } from '../../src/metadata/errors.ts'
import { RedisMetadataStore, type RedisStoreOptions } from '../../src/metadata/redis-store.ts'
import { closedPort } from '../helpers/fake-upstream.ts'
import { startRedis } from '../helpers/redis-server.ts'
import { runContract } from './contract.ts'

const COMMAND_TIMEOUT_MS = 500
const CONNECT_TIMEOUT_MS = 500
/** Slack for scheduling on a loaded 2-core machine. */
const MARGIN_MS = 500

async function connect(
  url: string,
  options: Partial<RedisStoreOptions> = {},
  keyPrefix = `t${Math.random().toString(36).slice(2)}:`,
) {
  return RedisMetadataStore.connect({
    url,
    keyPrefix,
    connectTimeoutMs: CONNECT_TIMEOUT_MS,
    commandTimeoutMs: COMMAND_TIMEOUT_MS,
    ...options,
  })
}

/** Resolves with how long `call` took to reject (it must reject with MetadataUnavailableError). */
async function timeToReject(t: Test, call: () => Promise<unknown>): Promise<number> {
  const started = Date.now()
  await t.rejects(call(), MetadataUnavailableError)
  return Date.now() - started
}

t.test('contract against a real redis-server', async (t) => {
  const redis = await startRedis(t)
  runContract(t, async (t, options = {}) => {
    // A fresh key prefix per test gives each a clean store on one server.
    const store = await connect(redis.url, options)
    t.teardown(() => store.close())
    return store
  })
})

t.test(
  'when redis-server dies calls fail fast with a typed error, and recover when it is back',
  async (t) => {
    const redis = await startRedis(t)
    const store = await connect(redis.url)
    t.teardown(() => store.close())
    await store.putTag('docker.io', 'library/busybox', 'latest', {
      digest: 'sha256:x',
      mediaType: 'm',
      size: 1,
      fetchedAt: 1,
    })
    await redis.kill()
    const bound = COMMAND_TIMEOUT_MS + MARGIN_MS
    for (const call of [
      () => store.getTag('docker.io', 'library/busybox', 'latest'),
      () => store.putBlob('sha256:a', 1, 1),
      () => store.ping(),
      () => store.acquireLease('x', 'me', { ttlMs: 1000 }),
    ]) {
      const took = await timeToReject(t, call)
      t.ok(took <= bound, `rejected in ${took} ms (bound ${bound} ms)`)
    }
    await redis.restart()
    const deadline = Date.now() + 10_000
    let recovered = false
    while (Date.now() < deadline && !recovered) {
      recovered = await store.ping().then(
        () => true,
        async () => {
          await new Promise((r) => setTimeout(r, 100))
          return false
        },
      )
    }
    t.ok(recovered, 'the same store answers again without being recreated')
    await store.putBlob('sha256:a', 5, 1)
    t.same(await store.blobTotals(), { count: 1, bytes: 5 })
  },
)

t.test('a Redis that stops answering makes calls time out within commandTimeout', async (t) => {
  const redis = await startRedis(t)
  const store = await connect(redis.url)
  t.teardown(() => store.close())
  await store.ping()
  redis.pause()
  t.teardown(() => redis.resume())
  const took = await timeToReject(t, () => store.getBlob('sha256:a'))
  t.ok(
    took >= COMMAND_TIMEOUT_MS - 50 && took <= COMMAND_TIMEOUT_MS + MARGIN_MS,
    `timed out after ${took} ms`,
  )
  redis.resume()
})

t.test(
  'a store created while Redis is down starts, fails fast, and closes without hanging',
  async (t) => {
    const port = await closedPort()
    const started = Date.now()
    const store = await connect(`redis://127.0.0.1:${port}/0`)
    t.ok(
      Date.now() - started <= CONNECT_TIMEOUT_MS + MARGIN_MS,
      'connect gives up within its bound',
    )
    const took = await timeToReject(t, () => store.getTag('a', 'b', 'c'))
    t.ok(took <= COMMAND_TIMEOUT_MS + MARGIN_MS, `rejected in ${took} ms`)
    const closing = Date.now()
    await store.close()
    t.ok(Date.now() - closing < 1000, 'close does not hang')
  },
)

t.test('failed calls are reported with the operation that failed', async (t) => {
  const redis = await startRedis(t)
  const failed: string[] = []
  const store = await connect(redis.url, { onError: (op) => failed.push(op) })
  t.teardown(() => store.close())
  await store.ping()
  t.same(failed, [])
  await redis.kill()
  await t.rejects(store.getTag('docker.io', 'library/busybox', 'latest'), MetadataUnavailableError)
  await t.rejects(store.putDocument('pypi', 'x', { fetchedAt: 1, page: {} }))
  t.same(failed, ['getTag', 'putDocument'])
})

t.test('two replicas add their statistics to the same totals', async (t) => {
  const redis = await startRedis(t)
  const prefix = `t${Math.random().toString(36).slice(2)}:`
  const replicas = [await connect(redis.url, {}, prefix), await connect(redis.url, {}, prefix)]
  t.teardown(() => Promise.all(replicas.map((r) => r.close())))
  const hour = Math.floor(Date.now() / 3_600_000) * 3_600_000
  await Promise.all(
    replicas.map((replica, i) =>
      replica.addUsage([
        {
          hour,
          protocol: 'docker',
          pool: 'docker.io',
          subject: 'library/nginx',
          counts: {
            hit: 5,
            miss: 1,
            stale: 0,
            revalidated: 0,
            bytesServed: 600,
            bytesUpstream: 100,
          },
          clients: [`10.0.0.${i}`, '10.0.0.99'],
          lastPulled: hour + i,
        },
      ]),
    ),
  )
  for (const replica of replicas) {
    const [nginx] = (await replica.usage({ granularity: 'hour', from: hour })).subjects
    t.equal(nginx?.counts.hit, 10, 'either replica answers for both')
    t.equal(nginx?.counts.bytesServed, 1200)
    t.equal(nginx?.clients, 3, 'clients seen by both count once')
    t.equal(nginx?.lastPulled, hour + 1)
  }
})
