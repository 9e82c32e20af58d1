/**
 * The internal endpoint replicas stream fills from: only the shared secret
 * opens it, it serves what is stored or being fetched here (whole or from a
 * byte on), and it never makes an upstream request.
 */
import t from 'tap'
import { request } from 'undici'
import { startApp } from '../helpers/app.ts'
import { fakeUpstream, serveBytes } from '../helpers/fake-upstream.ts'
import { freePort } from '../helpers/free-port.ts'
import { get } from '../helpers/http.ts'
import { startRedis } from '../helpers/redis-server.ts'
import { randomBlob } from '../helpers/streams.ts'

const SECRET = 'internal-endpoint-test-secret-0123456789'

t.test('the internal endpoint: the secret, stored blobs, ranges, no upstream', async (t) => {
  const blob = randomBlob(300_000)
  const upstream = await fakeUpstream(t, serveBytes(blob.data))
  const redis = await startRedis(t)
  const port = await freePort()
  const app = await startApp(t, {
    yaml: `metadata: { redis: { url: "${redis.url}" } }
cluster: { port: ${port}, host: 127.0.0.1, advertise: "http://127.0.0.1:${port}", secret: "${SECRET}" }
docker: { registries: [{ name: docker.io, default: true, upstreams: [{ url: "${upstream.url}" }] }] }
`,
  })
  const internal = `http://127.0.0.1:${port}/-/internal/blobs/`
  const ask = async (path: string, headers: Record<string, string> = {}) => {
    const res = await request(`${internal}${path}`, {
      headers: { authorization: `Bearer ${SECRET}`, ...headers },
    })
    return {
      status: res.statusCode,
      headers: res.headers,
      body: Buffer.from(await res.body.arrayBuffer()),
    }
  }

  for (const authorization of ['', 'Bearer wrong', `Basic ${SECRET}`]) {
    const res = await ask(blob.digest, { authorization })
    t.equal(res.status, 401, `refused with authorization "${authorization}"`)
  }
  t.equal((await ask(blob.digest)).status, 404, 'a blob not here is not fetched for a replica')
  t.equal((await ask('../../etc/passwd')).status, 404, 'only digests are served')
  t.equal(upstream.count(), 0, 'no upstream request for a replica')

  t.equal((await get(`${app.url}/v2/library/app/blobs/${blob.digest}`)).status, 200)
  const whole = await ask(blob.digest)
  t.equal(whole.status, 200)
  t.ok(whole.body.equals(blob.data), 'the stored blob, whole')
  const tail = await ask(blob.digest, { range: 'bytes=1000-' })
  t.equal(tail.status, 206)
  t.equal(tail.headers['content-range'], `bytes 1000-${blob.data.length - 1}/${blob.data.length}`)
  t.ok(tail.body.equals(blob.data.subarray(1000)), 'from the byte asked for')
  t.equal((await ask(blob.digest, { range: 'bytes=0-10' })).status, 416, 'only open ranges')
  t.equal(upstream.count(), 1, 'the one upstream request was the client’s')
})
