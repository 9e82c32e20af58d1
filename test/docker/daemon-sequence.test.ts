/**
 * The request sequence dockerd 20.10 sends to a registry mirror for
 * `docker pull busybox`, written out with the headers it sends (captured from
 * a real dockerd pulling through pullthrough): ping, HEAD of the tag, the
 * index by digest, the platform's manifest by digest, then config and layer
 * blobs. Replayed against pullthrough in front of a real registry.
 */
import t from 'tap'
import { request } from 'undici'
import { digestOf } from '../../src/storage/digest.ts'
import { startApp } from '../helpers/app.ts'
import { OCI_INDEX, OCI_MANIFEST, pushIndex } from '../helpers/manifests.ts'
import { startRegistry } from '../helpers/registry.ts'

const USER_AGENT =
  'docker/20.10.24+dfsg1 go/go1.19.8 git-commit/5d6db84 kernel/6.18.44 os/linux arch/amd64 UpstreamClient(Docker-Client/20.10.24+dfsg1 \\(linux\\))'
/** dockerd's Accept for the tag and the index (moby distribution/registry.go). */
const TAG_ACCEPT =
  'application/json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v1+prettyjws'
/** ... and for the platform manifest, in another order. */
const PLATFORM_ACCEPT =
  'application/vnd.docker.distribution.manifest.v1+prettyjws, application/json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.index.v1+json'

t.test('the request sequence of a dockerd mirror pull is answered in full, twice', async (t) => {
  const registry = await startRegistry(t)
  const index = await pushIndex(registry, 'library/busybox', 'latest', { mediaType: OCI_INDEX })
  const platform = index.manifests[0]!
  const { url, logs } = await startApp(t, {
    yaml: `docker: { registries: [{ name: docker.io, default: true, upstreams: [{ url: "${registry.url}" }] }] }\n`,
  })
  const send = async (method: 'GET' | 'HEAD', path: string, accept?: string) => {
    const res = await request(`${url}${path}`, {
      method,
      headers: {
        'user-agent': USER_AGENT,
        ...(accept ? { accept } : {}),
        ...(method === 'GET' && path !== '/v2/' ? { 'accept-encoding': 'gzip' } : {}),
        connection: 'close',
      },
    })
    const body = Buffer.from(await res.body.arrayBuffer())
    return { status: res.statusCode, headers: res.headers, body }
  }

  for (const round of ['first pull (cold)', 'second pull (warm)']) {
    const ping = await send('GET', '/v2/')
    t.equal(ping.status, 200, round)
    t.equal(ping.headers['docker-distribution-api-version'], 'registry/2.0')

    const head = await send('HEAD', '/v2/library/busybox/manifests/latest', TAG_ACCEPT)
    t.equal(head.status, 200, `${round}: HEAD tag`)
    t.equal(head.headers['docker-content-digest'], index.digest)
    t.equal(head.headers['content-type'], OCI_INDEX)
    t.equal(head.headers['content-length'], String(index.body.length))

    const list = await send('GET', `/v2/library/busybox/manifests/${index.digest}`, TAG_ACCEPT)
    t.equal(list.status, 200, `${round}: index by digest`)
    t.ok(list.body.equals(index.body))
    t.equal(list.headers['content-type'], OCI_INDEX)

    const manifest = await send(
      'GET',
      `/v2/library/busybox/manifests/${platform.digest}`,
      PLATFORM_ACCEPT,
    )
    t.equal(manifest.status, 200, `${round}: platform manifest by digest`)
    t.equal(manifest.headers['content-type'], OCI_MANIFEST)
    t.equal(digestOf(manifest.body), platform.digest)

    for (const blob of platform.blobs) {
      const res = await send('GET', `/v2/library/busybox/blobs/${blob.digest}`)
      t.equal(res.status, 200, `${round}: blob`)
      t.ok(res.body.equals(blob.data))
      t.equal(res.headers['docker-content-digest'], blob.digest)
    }
  }
  const events = logs.lines
    .filter((l) => l.msg === 'pull')
    .map((l) => `${String(l.action)} ${String(l.cache)}`)
  const blobs = platform.blobs.length
  t.same(events, [
    // The HEAD of a cold tag fetches the index, so the GET by digest after it is a hit.
    'head miss',
    'get hit',
    'get miss',
    ...Array<string>(blobs).fill('get miss'),
    'head hit',
    'get hit',
    'get hit',
    ...Array<string>(blobs).fill('get hit'),
  ])
})
