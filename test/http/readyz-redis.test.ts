import t from 'tap'
import { startApp } from '../helpers/app.ts'
import { startRedis } from '../helpers/redis-server.ts'

/** Polls /readyz until it answers `status` or the bound passes. */
async function waitReady(
  url: string,
  status: number,
  boundMs = 10_000,
): Promise<{ status: number; body: unknown }> {
  const deadline = Date.now() + boundMs
  for (;;) {
    const res = await fetch(`${url}/readyz`)
    const body: unknown = await res.json()
    if (res.status === status || Date.now() > deadline) return { status: res.status, body }
    await new Promise((r) => setTimeout(r, 100))
  }
}

t.test(
  '/readyz follows Redis: 200, then 503 while it is down, then 200 again without a restart',
  async (t) => {
    const redis = await startRedis(t)
    const { url, logs } = await startApp(t, {
      yaml: 'metadata: { redis: { url: "REDIS", connectTimeout: 500ms, commandTimeout: 500ms } }\n'.replace(
        'REDIS',
        redis.url,
      ),
    })
    t.equal((await waitReady(url, 200)).status, 200)
    await redis.kill()
    const down = await waitReady(url, 503)
    t.equal(down.status, 503)
    t.same(down.body, {
      status: 'unavailable',
      checks: { storage: 'ok', metadata: 'failed: PT_METADATA_UNAVAILABLE' },
    })
    t.equal((await fetch(`${url}/healthz`)).status, 200, 'still alive')
    await redis.restart()
    t.equal((await waitReady(url, 200)).status, 200)
    t.match(logs.raw.join('\n'), /redis unavailable; reconnecting/)
  },
)

t.test('the server starts while Redis is down and reports not ready', async (t) => {
  const redis = await startRedis(t)
  await redis.kill()
  const { url } = await startApp(t, {
    yaml: 'metadata: { redis: { url: "REDIS", connectTimeout: 300ms, commandTimeout: 300ms } }\n'.replace(
      'REDIS',
      redis.url,
    ),
  })
  t.equal((await fetch(`${url}/readyz`)).status, 503)
  await redis.restart()
  t.equal((await waitReady(url, 200)).status, 200)
})
