/**
 * Real images through pullthrough with a real client: skopeo copies every
 * image from pullthrough, which fills from two real Distribution registries
 * (one behind Bearer token auth), and gets the upstream's digests. Then the
 * upstreams go down one by one, and pullthrough restarts with both down.
 */
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { request } from 'undici'
import { startApp, type TestApp } from '../helpers/app.ts'
import { tempDir } from '../helpers/config.ts'
import {
  buildImage,
  DOCKER_MANIFEST,
  inspectManifest,
  OCI_INDEX,
  pullImage,
  type BuiltImage,
  type PushedImage,
} from '../helpers/images.ts'
import { startRedis } from '../helpers/redis-server.ts'
import { startRegistry, type TestRegistry } from '../helpers/registry.ts'

const KiB = 1024
const MiB = 1024 * KiB

interface Upstreams {
  readonly a: TestRegistry
  /** Behind Docker Hub-style token auth; pullthrough has its credentials. */
  readonly b: TestRegistry
  readonly images: Record<'app' | 'multi' | 'v2s2' | 'private', PushedImage>
  readonly built: BuiltImage
}

/** Two registries holding the same images (docker.io's mirrors A and B), plus a private one on B. */
async function upstreams(t: Test): Promise<Upstreams> {
  const dir = await tempDir(t, 'pt-images-')
  const [a, b] = await Promise.all([
    startRegistry(t),
    startRegistry(t, { auth: { username: 'puller', password: 'pull-secret-1' } }),
  ])
  const built = await buildImage(join(dir, 'app'), { layers: [4 * KiB, 1 * MiB, 6 * MiB] })
  const multi = await buildImage(join(dir, 'multi'), {
    layers: [64 * KiB, 512 * KiB],
    platforms: [
      { os: 'linux', architecture: 'amd64' },
      { os: 'linux', architecture: 'arm64' },
    ],
  })
  const images = {} as Record<'app' | 'multi' | 'v2s2' | 'private', PushedImage>
  for (const registry of [a, b]) {
    images.app = await registry.pushImage(built, 'library/app:1.0')
    images.multi = await registry.pushImage(multi, 'org/multi:2.0')
    images.v2s2 = await registry.pushImage(built, 'library/app-v2s2:1.0', { format: 'v2s2' })
  }
  images.private = await b.pushImage(built, 'team/private:v1')
  return { a, b, images, built }
}

function configYaml(up: Upstreams, extra = ''): string {
  const creds = `username: puller, password: "${up.b.auth?.password ?? ''}"`
  return `docker:
  registries:
    - name: docker.io
      default: true
      tagTTL: 1ms
      upstreams: [{ url: "${up.a.url}" }, { url: "${up.b.url}", ${creds} }]
      retry: { attempts: 1 }
      timeouts: { connect: 2s }
    - name: ghcr.io
      upstreams: [{ url: "${up.b.url}", ${creds} }]
${extra}`
}

function host(app: TestApp): string {
  return new URL(app.url).host
}

t.test('skopeo copies every image through pullthrough with the upstream digests', async (t) => {
  const up = await upstreams(t)
  const app = await startApp(t, { yaml: configYaml(up) })
  const out = await tempDir(t, 'pt-out-')
  const cases = [
    ['app:1.0', up.images.app],
    ['library/app:1.0', up.images.app],
    ['org/multi:2.0', up.images.multi],
    ['app-v2s2:1.0', up.images.v2s2],
    ['ghcr.io/team/private:v1', up.images.private],
  ] as const
  for (const [i, [ref, image]] of cases.entries()) {
    const pulled = await pullImage(t, `${host(app)}/${ref}`, join(out, String(i)))
    // Copying schema2 into an OCI layout converts it: only OCI images keep their digest there.
    if (image.mediaType !== DOCKER_MANIFEST)
      t.equal(pulled.digest, image.digest, `${ref}: the upstream's manifest digest`)
  }
  t.equal(up.images.multi.mediaType, OCI_INDEX)
  t.equal(up.images.v2s2.mediaType, DOCKER_MANIFEST)
  for (const [ref, image] of cases) {
    const byTag = await inspectManifest(t, `${host(app)}/${ref}`)
    t.equal(byTag.digest, image.digest, `inspect ${ref}`)
    const name = ref.slice(0, ref.lastIndexOf(':'))
    const byDigest = await inspectManifest(t, `${host(app)}/${name}@${image.digest}`)
    t.ok(byDigest.bytes.equals(image.bytes), `inspect ${name}@digest`)
  }
  const pulls = app.logs.lines.filter((l) => l.msg === 'pull' && l.action === 'get')
  const layer = up.images.app.manifests[0]?.layers[2] ?? ''
  t.equal(
    pulls.filter((l) => l.digest === layer && l.cache === 'miss').length,
    1,
    'the shared 6 MiB layer was fetched once for all three images holding it',
  )
})

t.test(
  'the token flow runs against a real token-auth registry, and ?ns= routes to it',
  async (t) => {
    const up = await upstreams(t)
    const app = await startApp(t, { yaml: configYaml(up) })
    const tokens = up.b.auth?.tokenServer.tokenRequests ?? []
    const before = tokens.length
    const res = await request(`${app.url}/v2/team/private/manifests/v1?ns=ghcr.io`, {
      headers: { accept: up.images.private.mediaType },
    })
    await res.body.dump()
    t.equal(res.statusCode, 200)
    t.equal(res.headers['docker-content-digest'], up.images.private.digest)
    const asked = tokens.slice(before)
    t.ok(asked.length >= 1, 'pullthrough asked the token server')
    t.match(asked[0], {
      withCredentials: true,
      status: 200,
      scopes: ['repository:team/private:pull'],
    })
    // Without ?ns= the default registry answers: its first mirror, A, lacks the tag, and
    // for a tag (unlike content by digest) a 404 is an answer, not a failure.
    const other = await request(`${app.url}/v2/team/private/manifests/v1`)
    await other.body.dump()
    t.equal(other.statusCode, 404)
    const logs = app.logs.raw.join('\n')
    t.notMatch(logs, /pull-secret-1/, 'the password never reaches a log')
    const basic = Buffer.from('puller:pull-secret-1').toString('base64').replace(/=+$/, '')
    t.notMatch(logs, basic, 'nor its Basic form')
  },
)

/** Pulls every image of `up` through `app` with skopeo; asserts the upstream digests. */
async function pullAll(t: Test, app: TestApp, up: Upstreams, label: string) {
  const out = await tempDir(t, 'pt-out-')
  for (const [ref, image] of [
    ['app:1.0', up.images.app],
    ['org/multi:2.0', up.images.multi],
  ] as const) {
    const name = ref.slice(0, ref.lastIndexOf(':'))
    const byTag = await pullImage(
      t,
      `${host(app)}/${ref}`,
      join(out, `${name}-tag`.replaceAll('/', '-')),
    )
    t.equal(byTag.digest, image.digest, `${label}: ${ref} by tag`)
    const byDigest = await pullImage(
      t,
      `${host(app)}/${name}@${image.digest}`,
      join(out, `${name}-digest`.replaceAll('/', '-')),
    )
    t.equal(byDigest.digest, image.digest, `${label}: ${ref} by digest`)
  }
}

for (const store of ['embedded', 'redis'] as const) {
  t.test(
    `with the ${store} store: failover to B, then stale with both down, across a restart`,
    async (t) => {
      const up = await upstreams(t)
      const redis = store === 'redis' ? await startRedis(t) : undefined
      const extra = redis ? `metadata: { redis: { url: "${redis.url}" } }\n` : ''
      const first = await startApp(t, { yaml: configYaml(up, extra) })
      await pullAll(t, first, up, 'both up')
      await up.a.stop()
      // Never pulled before: has to come from B.
      const out = await tempDir(t, 'pt-out-')
      await pullImage(t, `${host(first)}/app-v2s2:1.0`, join(out, 'v2s2'))
      const v2s2 = await inspectManifest(t, `${host(first)}/app-v2s2:1.0`)
      t.equal(v2s2.digest, up.images.v2s2.digest, 'A down: B serves')
      t.ok(
        first.logs.lines.some(
          (l) => l.msg === 'pull' && l.cache === 'miss' && l.upstream === up.b.url,
        ),
        'the pull event names B',
      )
      await up.b.stop()
      await pullAll(t, first, up, 'both down')
      t.ok(first.logs.lines.some((l) => l.msg === 'pull' && l.cache === 'stale'))
      await first.app.close()

      const env = { PULLTHROUGH_STORAGE_PATH: first.storagePath }
      const second = await startApp(t, { yaml: configYaml(up, extra), env })
      await pullAll(t, second, up, 'restarted, both down')
    },
  )
}
