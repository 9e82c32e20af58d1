/**
 * Rate limits per client against a real registry: requests per window (hit,
 * answered 429 with Retry-After in each protocol's format, recovered after
 * the window), per user rather than per address, upstream misses per window
 * (hits still served once the misses are spent), and one count shared by two
 * replicas through a real Redis.
 */
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { request } from 'undici'
import { basic, PASSWORDS, securedRegistry } from '../helpers/access.ts'
import { startApp, type TestApp } from '../helpers/app.ts'
import { tempDir } from '../helpers/config.ts'
import { buildImage } from '../helpers/images.ts'
import { startRedis } from '../helpers/redis-server.ts'
import { indexYaml, startPypiUpstream } from '../helpers/pypi-upstream.ts'
import { startRegistry } from '../helpers/registry.ts'

async function get(app: TestApp, path: string, authorization?: string) {
  const res = await request(`${app.url}${path}`, {
    headers: authorization ? { authorization } : {},
  })
  const body = await res.body.text()
  return { status: res.statusCode, retryAfter: res.headers['retry-after'], body }
}

/** A registry with one image of three layers, and pullthrough in front with `limits`. */
async function limited(t: Test, limits: string, extra = '') {
  const registry = await startRegistry(t)
  const dir = await tempDir(t, 'pt-limits-')
  const image = await buildImage(join(dir, 'oci'), { layers: [1024, 2048, 3072], tag: 'v1' })
  await registry.pushImage(image, 'library/app:v1')
  const yaml = `docker:
  registries:
    - { name: docker.io, default: true, upstreams: [{ url: "${registry.url}" }], retry: { attempts: 1 } }
pypi: { indexes: [] }
limits: ${limits}
${extra}`
  const blobs = image.manifests[0]!.layers.map((l) => `/v2/library/app/blobs/${l.digest}`)
  return { registry, yaml, blobs }
}

t.test('requests per window: 429 with Retry-After, then served again', async (t) => {
  const { yaml } = await limited(t, '{ requests: { max: 3, window: 2s } }')
  const app = await startApp(t, { yaml })
  for (let i = 0; i < 3; i++) t.equal((await get(app, '/v2/')).status, 200)
  const over = await get(app, '/v2/')
  t.equal(over.status, 429)
  t.match(over.body, /"code":"TOOMANYREQUESTS"/)
  t.match(over.body, /too many requests from this client/)
  t.ok(
    Number(over.retryAfter) >= 1 && Number(over.retryAfter) <= 2,
    `Retry-After ${String(over.retryAfter)}`,
  )
  t.equal((await get(app, '/healthz')).status, 200, 'only the pull routes are limited')
  await new Promise((resolve) => setTimeout(resolve, Number(over.retryAfter) * 1000 + 100))
  t.equal((await get(app, '/v2/')).status, 200, 'recovered after the window')
  const metrics = await get(app, '/metrics')
  t.match(metrics.body, /pullthrough_rate_limited_total\{limit="requests"\} 1/)
})

t.test('pip sees the limit as a 429 with Retry-After in its own format', async (t) => {
  const upstream = await startPypiUpstream(t)
  const app = await startApp(t, {
    yaml: `${indexYaml([upstream])}docker: { registries: [] }\nlimits: { upstreamMisses: { max: 1, window: 1m } }\n`,
  })
  t.equal((await get(app, '/simple/app/')).status, 200)
  const over = await get(app, '/simple/lib/')
  t.equal(over.status, 429)
  t.match(over.body, /^429 too many requests from this client need the upstream/)
  t.ok(Number(over.retryAfter) > 0)
  t.equal((await get(app, '/simple/app/')).status, 200, 'the cached page is still served')
})

t.test('a signed-in user is one client: another user keeps their own budget', async (t) => {
  const { app } = await securedRegistry(t, 'limits: { requests: { max: 2, window: 10s } }\n')
  const alice = basic('alice', PASSWORDS.alice)
  const bob = basic('bob', PASSWORDS.bob)
  t.equal((await get(app, '/v2/library/app/manifests/v1', alice)).status, 200)
  t.equal((await get(app, '/v2/library/app/manifests/v1', alice)).status, 200)
  t.equal((await get(app, '/v2/library/app/manifests/v1', alice)).status, 429)
  t.equal((await get(app, '/v2/library/app/manifests/v1', bob)).status, 200, 'bob is not alice')
})

t.test('upstream misses per window: cached content is still served', async (t) => {
  const { yaml, blobs } = await limited(t, '{ upstreamMisses: { max: 2, window: 1m } }')
  const app = await startApp(t, { yaml })
  t.equal((await get(app, blobs[0]!)).status, 200)
  t.equal((await get(app, blobs[1]!)).status, 200)
  const third = await get(app, blobs[2]!)
  t.equal(third.status, 429, 'a third miss in the minute is refused')
  t.match(third.body, /too many requests from this client need the upstream/)
  t.ok(Number(third.retryAfter) > 0 && Number(third.retryAfter) <= 60)
  for (const blob of blobs.slice(0, 2)) t.equal((await get(app, blob)).status, 200, 'hits pass')
  t.notOk(
    app.logs.lines.some((l) => l.msg === 'pull' && blobs[2]!.endsWith(String(l.digest))),
    'the refused miss reached no upstream',
  )
})

t.test('two replicas share one count through Redis', async (t) => {
  const redis = await startRedis(t)
  const { yaml } = await limited(
    t,
    '{ requests: { max: 4, window: 10s } }',
    `metadata: { redis: { url: "${redis.url}" } }\n`,
  )
  const a = await startApp(t, { yaml })
  const b = await startApp(t, { yaml })
  t.equal((await get(a, '/v2/')).status, 200)
  t.equal((await get(b, '/v2/')).status, 200)
  t.equal((await get(a, '/v2/')).status, 200)
  t.equal((await get(b, '/v2/')).status, 200)
  t.equal((await get(a, '/v2/')).status, 429, 'the fifth, on either replica')
  t.equal((await get(b, '/v2/')).status, 429)
  // Redis gone: limits step aside, pulls go on.
  await redis.kill()
  t.equal((await get(a, '/v2/')).status, 200)
})
