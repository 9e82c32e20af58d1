/**
 * The Docker-side fixtures against real registries, before pullthrough is in
 * the path: images built on disk survive a push and pull byte for byte, the
 * Docker schema 2 variant is what the registry serves, and the token-auth
 * registry behaves like Docker Hub.
 */
import { execFile } from 'node:child_process'
import { createHash } from 'node:crypto'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { gunzipSync } from 'node:zlib'
import t, { type Test } from 'tap'
import { request } from 'undici'
import { tempDir } from '../helpers/config.ts'
import {
  buildImage,
  DOCKER_MANIFEST,
  DOCKER_MANIFEST_LIST,
  inspectManifest,
  OCI_INDEX,
  OCI_MANIFEST,
  pullImage,
} from '../helpers/images.ts'
import { startRegistry } from '../helpers/registry.ts'
import { get } from '../helpers/http.ts'

const KiB = 1024
const MiB = 1024 * KiB
const ACCEPT_ALL = [OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST].join(', ')
const execFileAsync = promisify(execFile)

function sha256(bytes: Buffer): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`
}

t.test('a multi-layer image pushed and pulled back keeps its manifest digest', async (t) => {
  const registry = await startRegistry(t)
  const dir = await tempDir(t, 'pt-images-')
  const image = await buildImage(join(dir, 'src'), { layers: [4 * KiB, 1 * MiB, 3 * MiB] })
  const pushed = await registry.pushImage(image, 'library/app:1.0')
  t.equal(pushed.digest, image.digest, 'the registry holds the manifest as built')
  t.equal(pushed.mediaType, OCI_MANIFEST)
  const built = image.manifests[0]!
  t.same(
    pushed.manifests[0]?.layers,
    built.layers.map((l) => l.digest),
  )
  t.equal(pushed.manifests[0]?.config, built.config)

  const head = await get(`${registry.url}/v2/library/app/manifests/1.0`, {
    headers: { accept: ACCEPT_ALL },
    method: 'HEAD',
  })
  t.equal(
    head.headers['docker-content-digest'],
    pushed.digest,
    'inspect --raw gives the exact bytes',
  )
  t.equal(head.headers['content-type'], OCI_MANIFEST)

  const back = await pullImage(t, `${registry.host}/library/app:1.0`, join(dir, 'out'))
  t.equal(back.digest, image.digest)

  // Each layer is a gzip tar whose uncompressed digest is the config's diff_id.
  const config = JSON.parse(
    (await get(`${registry.url}/v2/library/app/blobs/${built.config}`)).body.toString(),
  ) as { architecture: string; os: string; rootfs: { diff_ids: string[] } }
  t.same(
    config.rootfs.diff_ids,
    built.layers.map((l) => l.diffId),
  )
  t.equal(config.os, 'linux')
  const top = await get(`${registry.url}/v2/library/app/blobs/${built.layers[2]!.digest}`)
  t.equal(sha256(top.body), built.layers[2]!.digest)
  t.equal(sha256(gunzipSync(top.body)), built.layers[2]!.diffId)
  const blob = join(image.dir, 'blobs', 'sha256', built.layers[2]!.digest.slice('sha256:'.length))
  const { stdout } = await execFileAsync('tar', ['-tvzf', blob])
  t.match(stdout, /^-rw-r--r-- root\/root\s+3145728 .* pullthrough-fixture-2\.bin\n$/)
})

t.test('a multi-arch index pushed with --all comes back with the same digests', async (t) => {
  const registry = await startRegistry(t)
  const dir = await tempDir(t, 'pt-images-')
  const platforms = [
    { os: 'linux', architecture: 'amd64' },
    { os: 'linux', architecture: 'arm64', variant: 'v8' },
  ]
  const image = await buildImage(join(dir, 'src'), { layers: [2 * KiB, 64 * KiB], platforms })
  t.equal(image.mediaType, OCI_INDEX)
  const pushed = await registry.pushImage(image, 'library/multi:latest')
  t.equal(pushed.digest, image.digest)
  t.equal(pushed.mediaType, OCI_INDEX)
  t.same(
    pushed.manifests.map((m) => [m.digest, m.platform]),
    image.manifests.map((m) => [m.digest, m.platform]),
  )
  const back = await pullImage(t, `${registry.host}/library/multi:latest`, join(dir, 'out'))
  t.same(back, { digest: image.digest, mediaType: OCI_INDEX })
})

t.test('the v2s2 variant is served as Docker schema 2 with the same blobs', async (t) => {
  const registry = await startRegistry(t)
  const dir = await tempDir(t, 'pt-images-')
  const image = await buildImage(join(dir, 'single'), { layers: [8 * KiB, 256 * KiB] })
  const pushed = await registry.pushImage(image, 'library/docker:v2', { format: 'v2s2' })
  t.equal(pushed.mediaType, DOCKER_MANIFEST)
  t.not(pushed.digest, image.digest, 'the conversion gives a new manifest digest')
  t.same(
    pushed.manifests[0]?.layers,
    image.manifests[0]!.layers.map((l) => l.digest),
  )
  const res = await get(`${registry.url}/v2/library/docker/manifests/v2`, {
    headers: { accept: ACCEPT_ALL },
  })
  t.equal(res.headers['content-type'], DOCKER_MANIFEST)
  t.equal(res.headers['docker-content-digest'], pushed.digest)
  t.equal(sha256(res.body), pushed.digest)

  const multi = await buildImage(join(dir, 'multi'), {
    layers: [4 * KiB],
    platforms: [
      { os: 'linux', architecture: 'amd64' },
      { os: 'linux', architecture: 'arm64' },
    ],
  })
  const list = await registry.pushImage(multi, 'library/docker:list', { format: 'v2s2' })
  t.equal(list.mediaType, DOCKER_MANIFEST_LIST)
  t.same(
    list.manifests.map((m) => m.mediaType),
    [DOCKER_MANIFEST, DOCKER_MANIFEST],
  )
})

/** A token-auth registry holding one image, pushed with the credentials. */
async function authRegistry(t: Test) {
  const registry = await startRegistry(t, { auth: { username: 'alice', password: 'wonderland' } })
  const image = await buildImage(await tempDir(t, 'pt-images-'), { layers: [16 * KiB] })
  return { registry, auth: registry.auth!, image }
}

t.test('the token-auth registry answers an anonymous /v2/ with a Bearer challenge', async (t) => {
  const { registry, auth } = await authRegistry(t)
  const res = await get(`${registry.url}/v2/`)
  t.equal(res.status, 401)
  t.equal(
    res.headers['www-authenticate'],
    `Bearer realm="${auth.tokenServer.realm}",service="${auth.service}"`,
  )
})

t.test('skopeo pushes to the token-auth registry with credentials, not without', async (t) => {
  const { registry, auth, image } = await authRegistry(t)
  await t.rejects(
    registry.pushImage(image, 'team/private:1', { creds: undefined }),
    /denied|unauthorized/,
    'anonymous push is refused',
  )
  const pushed = await registry.pushImage(image, 'team/private:1')
  t.equal(pushed.digest, image.digest)
  t.ok(
    auth.tokenServer.tokenRequests.some(
      (r) => r.withCredentials && r.scopes.includes('repository:team/private:pull,push'),
    ),
    'skopeo asked for push with credentials',
  )
  const raw = await inspectManifest(t, `${registry.host}/team/private:1`)
  t.equal(raw.digest, image.digest, 'skopeo pulls anonymously through the token flow')
})

t.test('an anonymous token pulls but cannot push; wrong credentials get no token', async (t) => {
  const { registry, auth, image } = await authRegistry(t)
  await registry.pushImage(image, 'team/private:1')
  const tokenUrl = `${auth.tokenServer.realm}?service=${auth.service}&scope=repository:team/private:pull,push`
  const issued = await get(tokenUrl)
  t.equal(issued.status, 200)
  const body = JSON.parse(issued.body.toString()) as {
    token: string
    access_token: string
    expires_in: number
    issued_at: string
  }
  t.equal(body.access_token, body.token)
  t.equal(body.expires_in, 300)
  t.same(auth.tokenServer.tokenRequests.at(-1), {
    service: auth.service,
    scopes: ['repository:team/private:pull,push'],
    withCredentials: false,
    status: 200,
    granted: [{ type: 'repository', name: 'team/private', actions: ['pull'] }],
  })

  const bearer = { authorization: `Bearer ${body.token}`, accept: ACCEPT_ALL }
  const manifest = await get(`${registry.url}/v2/team/private/manifests/1`, { headers: bearer })
  t.equal(manifest.status, 200, 'the token pulls')
  t.equal(sha256(manifest.body), image.digest)
  const upload = await get(`${registry.url}/v2/team/private/blobs/uploads/`, {
    headers: bearer,
    method: 'POST',
  })
  t.equal(upload.status, 401, 'the token does not push')
  t.match(upload.headers['www-authenticate'], /error="insufficient_scope"/)

  const wrong = await get(tokenUrl, {
    headers: {
      authorization: `Basic ${Buffer.from('alice:queen').toString('base64')}`,
    },
  })
  t.equal(wrong.status, 401)
  t.match(auth.tokenServer.tokenRequests.at(-1), { withCredentials: true, status: 401 })
})

t.test(
  'a stopped registry refuses connections and comes back on the same port with its data',
  async (t) => {
    const registry = await startRegistry(t)
    const dir = await tempDir(t, 'pt-images-')
    const pushed = await registry.pushImage(
      await buildImage(dir, { layers: [KiB] }),
      'library/up:1',
    )
    await registry.stop()
    await t.rejects(request(`${registry.url}/v2/`), { code: 'ECONNREFUSED' })
    await registry.start()
    const res = await get(`${registry.url}/v2/library/up/manifests/1`, {
      headers: { accept: ACCEPT_ALL },
      method: 'HEAD',
    })
    t.equal(res.headers['docker-content-digest'], pushed.digest)
  },
)
