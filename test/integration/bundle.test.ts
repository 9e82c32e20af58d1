/**
 * Export and import against real parts: a CNCF Distribution registry and a
 * PyPI-shaped index feed one pullthrough; its bundle is read by skopeo as an
 * OCI archive and by pip as a file:// index; a second pullthrough with no
 * upstream at all (offline, upstreams on dead ports) imports it and serves
 * skopeo and pip the same digests. Cut or corrupt bundles are refused and
 * leave the second store as it was.
 */
import { createHash } from 'node:crypto'
import { execFile } from 'node:child_process'
import { readdir, readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import t, { type Test } from 'tap'
import type { TestApp } from '../helpers/app.ts'
import { cliAgainst, pipDownload, startAirgap, startSource } from '../helpers/bundle.ts'
import { tempDir } from '../helpers/config.ts'
import { get } from '../helpers/http.ts'
import { buildImage } from '../helpers/images.ts'
import { startPypiUpstream } from '../helpers/pypi-upstream.ts'
import { startRegistry } from '../helpers/registry.ts'
import { registryFlags, skopeo } from '../helpers/skopeo.ts'

const TOKEN = 'bundle-test-admin-token-0001'
const execFileAsync = promisify(execFile)

const sha256 = (data: Buffer) => `sha256:${createHash('sha256').update(data).digest('hex')}`

const cli = (t: Test, app: TestApp, args: string[]) => cliAgainst(t, app, TOKEN, args)

/** Files under the blob store (committed blobs), by name. */
async function storedBlobs(app: TestApp): Promise<string[]> {
  const root = join(app.storagePath, 'blobs', 'sha256')
  const names: string[] = []
  for (const fan of await readdir(root).catch(() => []))
    names.push(...(await readdir(join(root, fan))))
  return names.sort()
}

t.test(
  'export on one cache, import on one with no upstream: same digests for skopeo and pip',
  async (t) => {
    const registry = await startRegistry(t)
    const upstream = await startPypiUpstream(t)
    const dir = await tempDir(t, 'pt-bundle-')
    const app1 = await buildImage(join(dir, 'app1'), { layers: [3000, 5000] })
    const multi = await buildImage(join(dir, 'multi'), {
      layers: [2000],
      platforms: [
        { os: 'linux', architecture: 'amd64' },
        { os: 'linux', architecture: 'arm64' },
      ],
    })
    await registry.pushImage(app1, 'library/app:1.0')
    await registry.pushImage(multi, 'library/multi:2.0')
    const source = await startSource(t, TOKEN, registry, upstream)

    // Nothing cached yet: the export fetches what it names, verified.
    const bundle = join(dir, 'bundle.tar')
    const requirements = join(dir, 'requirements.txt')
    await writeFile(requirements, 'app\n')
    const exported = await cli(t, source, [
      'export',
      '--images',
      'library/app:1.0',
      '--images',
      'multi:2.0',
      '--requirements',
      requirements,
      '--package',
      'lib==1.0',
      '--out',
      bundle,
    ])
    t.equal(exported.code, 0, exported.stderr)
    t.match(exported.stdout, /2 images, 2 projects/)
    t.match(exported.stdout, /image\s+docker\.io\/library\/app:1\.0/)
    t.same(
      (await readdir(dir)).filter((n) => n.includes('partial')),
      [],
      'no temp file left beside the bundle',
    )

    // The bundle is an OCI archive skopeo reads, and a PEP 503 tree pip reads.
    const raw = await skopeo(t, [
      'inspect',
      '--raw',
      `oci-archive:${bundle}:docker.io/library/app:1.0`,
    ])
    t.equal(sha256(raw), app1.digest, 'skopeo reads the image from the bundle')
    const rawIndex = await skopeo(t, [
      'inspect',
      '--raw',
      `oci-archive:${bundle}:docker.io/library/multi:2.0`,
    ])
    t.equal(sha256(rawIndex), multi.digest, 'and the multi-arch index')
    const copied = join(dir, 'copied')
    await skopeo(t, [
      'copy',
      '--all',
      `oci-archive:${bundle}:docker.io/library/multi:2.0`,
      `oci:${copied}:x`,
    ])
    const unpacked = join(dir, 'unpacked')
    await execFileAsync('mkdir', ['-p', unpacked])
    await execFileAsync('tar', ['-xf', bundle, '-C', unpacked])
    await execFileAsync('sha256sum', ['-c', '--quiet', 'SHA256SUMS'], { cwd: unpacked })
    const lib10 = upstream.packages.project('lib').files.filter((f) => f.version === '1.0')
    const fromTree = await pipDownload(t, `file://${unpacked}/pypi/pypi/simple/`, 'lib==1.0')
    t.equal(fromTree.run.code, 0, `pip reads the unpacked tree: ${fromTree.run.stderr}`)
    t.ok(
      fromTree.files.some((f) => lib10.some((l) => `sha256:${l.sha256}` === f.digest)),
      'a file of lib 1.0',
    )

    // The air-gapped side: offline, its upstreams on ports nobody listens on.
    const airgap = await startAirgap(t, TOKEN)
    t.not(
      (await get(`${airgap.url}/v2/library/app/manifests/1.0`)).status,
      200,
      'nothing there before',
    )

    // A truncated bundle and a flipped byte are refused, and change nothing.
    const whole = await readFile(bundle)
    const cut = join(dir, 'cut.tar')
    await writeFile(cut, whole.subarray(0, Math.floor(whole.length * 0.6)))
    const truncated = await cli(t, airgap, ['import', cut])
    t.equal(truncated.code, 1)
    t.match(truncated.stderr, /import refused \(400\): .*(cut short|missing|ends)/)
    const layer = app1.manifests[0]!.layers[1]!
    const at = whole.indexOf(
      await readFile(join(app1.dir, 'blobs', 'sha256', layer.digest.slice(7))),
    )
    t.ok(at > 0, 'the layer is in the bundle as is')
    const flipped = Buffer.from(whole)
    flipped[at + 100] = (flipped[at + 100] ?? 0) ^ 0xff
    const corrupt = join(dir, 'corrupt.tar')
    await writeFile(corrupt, flipped)
    const refused = await cli(t, airgap, ['import', corrupt])
    t.equal(refused.code, 1)
    t.match(
      refused.stderr,
      new RegExp(`${layer.digest.slice(7)}: its bytes do not match its digest`),
    )
    t.same(await storedBlobs(airgap), [], 'the refused bundles left no blob behind')
    t.same(await readdir(join(airgap.storagePath, 'tmp')), [], 'nor anything staged')
    t.not((await get(`${airgap.url}/v2/library/app/manifests/1.0`)).status, 200, 'nor a tag')

    const imported = await cli(t, airgap, ['import', bundle])
    t.equal(imported.code, 0, imported.stderr)
    t.match(imported.stdout, /2 images, 2 projects \(\d+ files\)/)
    t.match(imported.stdout, /0 already stored/)

    // skopeo and pip through the air-gapped cache get what the source had.
    const pulled = await skopeo(t, [
      'inspect',
      '--raw',
      ...(await registryFlags(t, '', undefined)),
      `docker://${airgap.url.slice(7)}/library/app:1.0`,
    ])
    t.equal(sha256(pulled), app1.digest, 'the tag resolves to the same manifest')
    const out = join(dir, 'pulled')
    await skopeo(t, [
      'copy',
      '--all',
      ...(await registryFlags(t, 'src', undefined)),
      `docker://${airgap.url.slice(7)}/library/multi:2.0`,
      `oci:${out}:x`,
    ])
    const index = JSON.parse(await readFile(join(out, 'index.json'), 'utf8')) as {
      manifests: { digest: string }[]
    }
    t.equal(
      index.manifests[0]?.digest,
      multi.digest,
      'the multi-arch image copies whole, same digest',
    )
    const fromCache = await pipDownload(t, `${airgap.url}/pypi/pypi/simple/`, 'lib==1.0')
    t.equal(fromCache.run.code, 0, `pip downloads from the imported cache: ${fromCache.run.stderr}`)
    t.same(
      fromCache.files.map((f) => f.digest).sort(),
      fromTree.files.map((f) => f.digest).sort(),
      'the same files as from the bundle',
    )
    const app = await pipDownload(t, `${airgap.url}/pypi/pypi/simple/`, 'app')
    t.equal(app.run.code, 0, `the requirements file's package too: ${app.run.stderr}`)

    // Importing again adds nothing.
    const again = await cli(t, airgap, ['import', '--json', bundle])
    t.equal(again.code, 0, again.stderr)
    const report = JSON.parse(again.stdout) as {
      added: { count: number }
      present: { count: number }
    }
    t.equal(report.added.count, 0, 'nothing new')
    t.ok(report.present.count > 0, 'everything already stored, checked')
    t.ok((await stat(bundle)).size > 0)
  },
)
