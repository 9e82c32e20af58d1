/**
 * Headers every response carries: `X-Content-Type-Options: nosniff` on every
 * route, error, redirect and 404, so no body can be sniffed into HTML.
 */
import { once } from 'node:events'
import { connect } from 'node:net'
import t from 'tap'
import { request } from 'undici'
import { startApp } from '../helpers/app.ts'
import { closedPort } from '../helpers/fake-upstream.ts'

t.test('every response carries X-Content-Type-Options: nosniff', async (t) => {
  const port = await closedPort()
  const down = `http://127.0.0.1:${port}`
  const { url } = await startApp(t, {
    yaml: `docker: { registries: [{ name: docker.io, default: true, upstreams: [{ url: "${down}" }], retry: { attempts: 1 } }] }
pypi: { indexes: [{ name: pypi, default: true, upstreams: [{ url: "${down}/simple/" }], retry: { attempts: 1 } }] }
`,
  })
  const digest = `sha256:${'a'.repeat(64)}`
  for (const [method, path, status] of [
    ['GET', '/v2/', 200],
    ['GET', '/v2/Bad_Name/manifests/latest', 400],
    ['GET', `/v2/library/x/blobs/${digest}`, 503],
    ['HEAD', `/v2/library/x/blobs/${digest}`, 503],
    ['PUT', `/v2/library/x/blobs/${digest}`, 405],
    ['GET', '/simple/Foo/', 301],
    ['GET', '/simple/foo/', 503],
    ['GET', '/pypi/nope/simple/foo/', 404],
    ['GET', '/metrics', 200],
    ['GET', '/healthz', 200],
    ['GET', '/readyz', 200],
    ['GET', '/no/such/route', 404],
    ['GET', '/%zz', 400],
  ] as const) {
    const res = await request(`${url}${path}`, { method })
    await res.body.dump()
    t.equal(res.statusCode, status, `${method} ${path}`)
    t.equal(res.headers['x-content-type-options'], 'nosniff', `${method} ${path}`)
  }
})

t.test('a request the HTTP parser refuses is answered 400 with nosniff too', async (t) => {
  const { url } = await startApp(t)
  const socket = connect(Number(new URL(url).port), '127.0.0.1')
  t.teardown(() => socket.destroy())
  await once(socket, 'connect')
  let answer = ''
  socket.on('data', (chunk: Buffer) => {
    answer += chunk.toString()
  })
  socket.on('error', () => undefined)
  socket.write('NOT AN HTTP REQUEST\r\n\r\n')
  await once(socket, 'close')
  t.match(answer, /^HTTP\/1\.1 400 /)
  t.match(answer, /\r\nx-content-type-options: nosniff\r\n/i)
})
