/**
 * A manifest's Content-Type comes from upstream data (its `mediaType`, the
 * upstream's header), so it is held to the known manifest media types:
 * anything else is served as application/octet-stream, never as a type a
 * browser would render on pullthrough's origin.
 */
import t from 'tap'
import { request } from 'undici'
import { digestOf } from '../../src/storage/digest.ts'
import { startApp } from '../helpers/app.ts'
import { fakeUpstream } from '../helpers/fake-upstream.ts'

t.test(
  'a manifest claiming text/html is served as application/octet-stream with nosniff',
  async (t) => {
    // Fault injection: a hostile upstream whose "manifest" is an HTML page in JSON clothing.
    const bodies: Record<string, Buffer> = {
      '/v2/library/evil/manifests/latest': Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: 'text/html',
          layers: [],
          x: '<script>alert(document.domain)</script>',
        }),
      ),
      '/v2/library/plain/manifests/latest': Buffer.from('<html><script>alert(1)</script></html>'),
    }
    const upstream = await fakeUpstream(t, (req, res) => {
      const body = bodies[req.url ?? '']
      if (!body) return res.writeHead(404).end()
      res.writeHead(200, {
        'content-type': 'text/html; charset=utf-8',
        'content-length': String(body.length),
        'docker-content-digest': digestOf(body),
      })
      return res.end(req.method === 'HEAD' ? undefined : body)
    })
    const { url } = await startApp(t, {
      yaml: `docker: { registries: [{ name: docker.io, default: true, upstreams: [{ url: "${upstream.url}" }] }] }\n`,
    })
    for (const name of ['evil', 'plain']) {
      const body = bodies[`/v2/library/${name}/manifests/latest`]!
      for (const reference of ['latest', digestOf(body)]) {
        const res = await request(`${url}/v2/library/${name}/manifests/${reference}`, {
          headers: { accept: '*/*' },
        })
        const served = Buffer.from(await res.body.arrayBuffer())
        t.equal(res.statusCode, 200, `${name}:${reference}`)
        t.equal(res.headers['content-type'], 'application/octet-stream', `${name}:${reference}`)
        t.equal(res.headers['x-content-type-options'], 'nosniff')
        t.ok(served.equals(body), 'the bytes are the ones the digest covers')
      }
    }
  },
)
