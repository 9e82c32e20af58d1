/**
 * Range requests on blobs at their edges (RFC 9110 §14, §15.5.17): offsets
 * past the end, and past any safe integer, answer 416 with the blob's size in
 * Content-Range, never a 500.
 */
import t from 'tap'
import { startApp } from '../helpers/app.ts'
import { startRegistry } from '../helpers/registry.ts'
import { randomBlob } from '../helpers/streams.ts'
import { get } from '../helpers/http.ts'

const HUGE = '99999999999999999999'

t.test('ranges past the end or beyond safe integers answer 416 or are clamped', async (t) => {
  const registry = await startRegistry(t)
  const { url, app } = await startApp(t, {
    yaml: `docker: { registries: [{ name: docker.io, default: true, upstreams: [{ url: "${registry.url}" }] }] }\n`,
  })
  const cached = randomBlob(4096)
  const uncached = randomBlob(2048)
  await registry.pushBlob('org/app', cached.digest, cached.data)
  await registry.pushBlob('org/app', uncached.digest, uncached.data)
  const at = (digest: string) => `${url}/v2/org/app/blobs/${digest}`
  t.equal((await get(at(cached.digest))).status, 200)
  await app.services.cache.settled()
  t.ok(await app.deps.blobs.has(cached.digest))

  const size = cached.data.length
  for (const range of [`bytes=${HUGE}-`, `bytes=${HUGE}-${HUGE}`, `bytes=${size}-`]) {
    const res = await get(at(cached.digest), { headers: { range } })
    t.equal(res.status, 416, range)
    t.equal(res.headers['content-range'], `bytes */${size}`, range)
    t.match(JSON.parse(res.body.toString()), { errors: [{ code: 'RANGE_INVALID' }] }, range)
  }
  const clamped = await get(at(cached.digest), { headers: { range: `bytes=0-${HUGE}` } })
  t.equal(clamped.status, 206)
  t.equal(clamped.headers['content-range'], `bytes 0-${size - 1}/${size}`)
  t.ok(clamped.body.equals(cached.data))
  const tail = await get(at(cached.digest), { headers: { range: `bytes=4000-${HUGE}` } })
  t.equal(tail.status, 206)
  t.ok(tail.body.equals(cached.data.subarray(4000)))

  const miss = await get(at(uncached.digest), { headers: { range: `bytes=${HUGE}-` } })
  t.equal(miss.status, 416, 'a blob not cached yet: its size comes from the upstream')
  t.equal(miss.headers['content-range'], `bytes */${uncached.data.length}`)
})
