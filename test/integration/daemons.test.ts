/**
 * The real daemons pull through pullthrough: dockerd with `registry-mirrors`,
 * containerd's ctr with a `hosts.toml` mirror (which adds `?ns=<registry>`),
 * from a real Distribution registry behind it. A second daemon pulls the same
 * images with the registry stopped: everything comes from the cache.
 * Start-up and pull times are logged as comments.
 */
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import t, { type Test } from 'tap'
import { request } from 'undici'
import { tempDir } from '../helpers/config.ts'
import { startContainerd, writeHostsDir, type TestContainerd } from '../helpers/containerd.ts'
import { startDockerd } from '../helpers/dockerd.ts'
import { buildImage, type BuiltImage, type BuiltManifest } from '../helpers/images.ts'
import { startRegistry } from '../helpers/registry.ts'
import { startApp, type TestApp } from '../helpers/app.ts'

/** A Docker Hub official-image path, so mirror pulls of `NAME:TAG` ask the registry for it. */
const REPOSITORY = 'library/pullthrough-probe'
const NAME = 'pullthrough-probe'
const TAG = 'v1'
const LAYER_BYTES = 4 * 1024

/** Two-segment name on Docker Hub and a name on a second registry (ghcr.io). */
const ORG_REPOSITORY = 'org/tool'

/**
 * A registry holding freshly built images (random bytes: new digests every run)
 * under a one-segment Docker Hub name, a two-segment name, and pullthrough in
 * front of it as docker.io and as ghcr.io.
 */
async function pullthroughWithImages(t: Test) {
  const registry = await startRegistry(t)
  const dir = await tempDir(t, 'pt-daemons-')
  const image = await buildImage(join(dir, 'oci'), {
    layers: [LAYER_BYTES, 2 * 1024 * 1024],
    tag: TAG,
  })
  await registry.pushImage(image, `${REPOSITORY}:${TAG}`)
  await registry.pushImage(image, `${ORG_REPOSITORY}:${TAG}`)
  const app = await startApp(t, {
    yaml: `docker:
  registries:
    - { name: docker.io, default: true, upstreams: [{ url: "${registry.url}" }], retry: { attempts: 1 } }
    - { name: ghcr.io, upstreams: [{ url: "${registry.url}" }], retry: { attempts: 1 } }
`,
  })
  return { registry, app, host: new URL(app.url).host, image, manifest: image.manifests[0]! }
}

/** The pull events pullthrough logged, as `registry repository reference cache`. */
function pullsSeen(app: TestApp): string[] {
  return app.logs.lines
    .filter((l) => l.msg === 'pull')
    .map((l) => `${String(l.registry)} ${String(l.repository)} ${String(l.cache)}`)
}

/** Runs `fn`, logging how long it took. */
async function timed<T>(t: Test, what: string, fn: () => Promise<T>): Promise<T> {
  const start = performance.now()
  const result = await fn()
  t.comment(`${what}: ${Math.round(performance.now() - start)} ms`)
  return result
}

interface InspectedImage {
  readonly Id: string
  readonly RepoDigests: readonly string[]
  readonly RootFS: { readonly Layers: readonly string[] }
}

function assertDockerHas(
  t: Test,
  inspected: { stdout: string; stderr: string; code: number | null },
  image: BuiltImage,
  manifest: BuiltManifest,
  repoDigest: string,
) {
  t.equal(inspected.code, 0, inspected.stderr)
  const [found] = JSON.parse(inspected.stdout) as InspectedImage[]
  t.equal(found?.Id, manifest.config, 'the image ID is the config digest')
  t.ok(found?.RepoDigests.includes(`${repoDigest}@${image.digest}`), 'by the manifest digest')
  t.same(
    found?.RootFS.Layers,
    manifest.layers.map((l) => l.diffId),
    'unpacked to the layers built',
  )
}

/** The digest `ctr images ls` lists for `ref`. */
async function ctrDigest(containerd: TestContainerd, ref: string): Promise<string | undefined> {
  const { stdout } = await containerd.ctr(['images', 'ls'])
  const row = stdout
    .split('\n')
    .map((line) => line.split(/\s+/))
    .find(([name]) => name === ref)
  return row?.[2]
}

t.test('docker and ctr pull through pullthrough, then from its cache alone', async (t) => {
  const { registry, app, host, image, manifest } = await timed(
    t,
    'registry, images, pullthrough',
    () => pullthroughWithImages(t),
  )

  t.test(
    'docker pulls one- and two-segment Docker Hub names through registry-mirrors',
    async (t) => {
      const dockerd = await timed(t, 'dockerd and its containerd ready', () =>
        startDockerd(t, { registryMirrors: [app.url], insecureRegistries: [host] }),
      )
      for (const [ref, repository] of [
        [`${NAME}:${TAG}`, REPOSITORY],
        [`${ORG_REPOSITORY}:${TAG}`, ORG_REPOSITORY],
      ] as const) {
        const pull = await timed(t, `docker pull ${ref}`, () => dockerd.docker(['pull', ref]))
        t.equal(pull.code, 0, pull.stderr)
        t.match(pull.stdout, `Digest: ${image.digest}`)
        const inspected = await dockerd.docker(['image', 'inspect', ref])
        // Docker Hub names keep their short form in RepoDigests.
        assertDockerHas(t, inspected, image, manifest, ref.slice(0, ref.indexOf(':')))
        t.ok(
          pullsSeen(app).some((p) => p.startsWith(`docker.io ${repository} `)),
          `${ref} went through pullthrough`,
        )
      }
      // The statistics count what dockerd pulled, as the API reports it.
      await app.app.services.pulls?.flush()
      const res = await request(`${app.url}/-/api/v1/repositories`)
      const body = (await res.body.json()) as {
        items: { name: string; pulls: { total: number } }[]
      }
      for (const repository of [REPOSITORY, ORG_REPOSITORY]) {
        const gets = app.logs.lines.filter(
          (l) => l.msg === 'pull' && l.action === 'get' && l.repository === repository,
        ).length
        t.equal(
          // A repository only HEADed (its content already local) has no row: 0 pulls.
          body.items.find((r) => r.name === repository)?.pulls.total ?? 0,
          gets,
          `${repository}: the API counts the ${gets} GETs dockerd made`,
        )
      }
    },
  )

  t.test('ctr pulls through hosts.toml mirrors, routed by ?ns= to each registry', async (t) => {
    const containerd = await timed(t, 'containerd ready', () => startContainerd(t))
    const hostsDir = await writeHostsDir(t, 'docker.io', [app.url])
    await writeHostsDir(t, 'ghcr.io', [app.url], hostsDir)
    for (const [ref, registryName] of [
      [`docker.io/${REPOSITORY}:${TAG}`, 'docker.io'],
      [`ghcr.io/${ORG_REPOSITORY}:${TAG}`, 'ghcr.io'],
    ] as const) {
      const pull = await timed(t, `ctr pull ${ref}`, () =>
        containerd.ctr(['images', 'pull', '--hosts-dir', hostsDir, ref]),
      )
      t.equal(pull.code, 0, pull.stderr)
      t.equal(await ctrDigest(containerd, ref), image.digest)
      t.ok(
        pullsSeen(app).some((p) => p.startsWith(`${registryName} `)),
        `${ref}: routed to ${registryName}`,
      )
    }
    // One layer's chain ID is its diff ID: the unpacked snapshot is keyed by it.
    const snapshots = await containerd.ctr(['snapshots', 'ls'])
    t.match(snapshots.stdout, manifest.layers[0]!.diffId)
  })

  t.test(
    'with the registry stopped, new daemons still pull everything from the cache',
    async (t) => {
      await registry.stop()
      const dockerd = await startDockerd(t, {
        registryMirrors: [app.url],
        insecureRegistries: [host],
      })
      const pull = await dockerd.docker(['pull', `${NAME}:${TAG}`])
      t.equal(pull.code, 0, pull.stderr)
      t.match(pull.stdout, `Digest: ${image.digest}`)
      const containerd = await startContainerd(t)
      const hostsDir = await writeHostsDir(t, 'docker.io', [app.url])
      const ref = `docker.io/${ORG_REPOSITORY}:${TAG}`
      const ctr = await containerd.ctr(['images', 'pull', '--hosts-dir', hostsDir, ref])
      t.equal(ctr.code, 0, ctr.stderr)
      t.equal(await ctrDigest(containerd, ref), image.digest)
    },
  )
})
