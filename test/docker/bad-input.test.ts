import { readdir } from 'node:fs/promises'
import { dirname } from 'node:path'
import t from 'tap'
import { request } from 'undici'
import { startApp } from '../helpers/app.ts'
import { fakeUpstream } from '../helpers/fake-upstream.ts'
import { randomBlob } from '../helpers/streams.ts'

t.test('bad input answers the OCI code and never reaches an upstream or the disk', async (t) => {
  const upstream = await fakeUpstream(t)
  const { url, storagePath } = await startApp(t, {
    yaml: `docker: { registries: [{ name: docker.io, default: true, upstreams: [{ url: "${upstream.url}" }] }] }\n`,
  })
  const before = await readdir(dirname(storagePath))
  const digest = randomBlob(10).digest
  const longName = `library/${'a'.repeat(300)}`
  const cases: [string, string, number, string][] = [
    ['GET', `/v2/Library/BusyBox/blobs/${digest}`, 400, 'NAME_INVALID'],
    ['GET', `/v2/a/..%2F..%2Fetc/blobs/${digest}`, 400, 'NAME_INVALID'],
    ['GET', `/v2/${longName}/manifests/latest`, 400, 'NAME_INVALID'],
    ['GET', `/v2/${longName}/tags/list`, 400, 'NAME_INVALID'],
    ['GET', '/v2/library/busybox/blobs/sha256:..%2F..%2Fetc%2Fpasswd', 404, 'UNSUPPORTED'],
    ['GET', '/v2/library/busybox/blobs/sha256:not-hex', 400, 'DIGEST_INVALID'],
    ['GET', `/v2/library/busybox/blobs/sha512:${'a'.repeat(128)}`, 400, 'UNSUPPORTED'],
    ['GET', `/v2/library/busybox/manifests/sha512:${'a'.repeat(128)}`, 400, 'UNSUPPORTED'],
    ['GET', '/v2/library/busybox/manifests/sha256:ABC', 400, 'DIGEST_INVALID'],
    ['GET', '/v2/library/busybox/manifests/%2E%2E', 404, 'UNSUPPORTED'],
    ['GET', '/v2/library/busybox/manifests/-latest', 400, 'DIGEST_INVALID'],
    ['HEAD', `/v2/library/busybox/manifests/${'t'.repeat(129)}`, 400, 'DIGEST_INVALID'],
    ['GET', '/v2/library/busybox/referrers/latest', 400, 'DIGEST_INVALID'],
    ['GET', '/v2/library/busybox/tags/list?n=abc', 400, 'PAGINATION_NUMBER_INVALID'],
    ['GET', '/v2/library/busybox/tags/list?n=100000', 400, 'PAGINATION_NUMBER_INVALID'],
    ['GET', '/v2/busybox/manifests/latest?ns=unknown.example', 404, 'NAME_UNKNOWN'],
    ['GET', '/v2/library/busybox/other/latest', 404, 'UNSUPPORTED'],
    ['PUT', `/v2/library/busybox/manifests/latest`, 405, 'UNSUPPORTED'],
    ['POST', '/v2/library/busybox/blobs/uploads/', 405, 'UNSUPPORTED'],
    ['PATCH', '/v2/library/busybox/blobs/uploads/1', 405, 'UNSUPPORTED'],
    ['DELETE', `/v2/library/busybox/blobs/${digest}`, 405, 'UNSUPPORTED'],
    ['DELETE', `/v2/library/busybox/manifests/${digest}`, 405, 'UNSUPPORTED'],
  ]
  for (const [method, path, status, code] of cases) {
    const res = await request(`${url}${path}`, { method })
    const text = await res.body.text()
    t.equal(res.statusCode, status, `${method} ${path}`)
    t.match(res.headers['content-type'], /^application\/json/, `${method} ${path}`)
    if (method !== 'HEAD') {
      const body = JSON.parse(text) as { errors: { code: string }[] }
      t.equal(body.errors[0]?.code, code, `${method} ${path}`)
    }
  }
  t.equal(upstream.count(), 0, 'no upstream was asked')
  t.same(await readdir(dirname(storagePath)), before, 'nothing was created beside the storage path')
  t.same(await readdir(`${storagePath}/blobs/sha256`), [], 'nothing was stored')
})

t.test(
  'a well-formed request for an unknown blob answers BLOB_UNKNOWN after asking upstream',
  async (t) => {
    const upstream = await fakeUpstream(t)
    const { url } = await startApp(t, {
      yaml: `docker: { registries: [{ name: docker.io, default: true, upstreams: [{ url: "${upstream.url}" }] }] }\n`,
    })
    const res = await request(`${url}/v2/library/busybox/blobs/${randomBlob(10).digest}`)
    t.equal(res.statusCode, 404)
    t.match(await res.body.json(), { errors: [{ code: 'BLOB_UNKNOWN' }] })
    t.equal(upstream.count('/v2/library/busybox/blobs/'), 1)
  },
)
