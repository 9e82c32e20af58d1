/**
 * A bundle of multi-GB shape, scaled to this machine (a 512 MiB layer among
 * smaller ones), through the real `pullthrough serve` on both sides: the
 * export and the import stream it, so neither server's peak memory comes
 * near the bundle's size, and the imported image serves the same bytes.
 */
import { createHash } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { request } from 'undici'
import { CLI, cleanEnv, runCli, spawnNode, waitListening } from '../helpers/cli.ts'
import { tempDir } from '../helpers/config.ts'
import { freePort } from '../helpers/free-port.ts'
import { buildImage } from '../helpers/images.ts'
import { startRegistry } from '../helpers/registry.ts'

const MiB = 1024 * 1024
const TOKEN = 'bundle-large-admin-token-0001'
/**
 * Peak resident memory either server may reach. An idle server holds about
 * 100 MiB; one that held the bundle (over 580 MiB) in memory would pass this.
 */
const MAX_PEAK_RSS_BYTES = 400 * MiB

/** Peak resident set size of a process (VmHWM), in bytes. */
async function peakRss(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8')
  const kib = /^VmHWM:\s+(\d+) kB$/m.exec(status)?.[1]
  if (kib === undefined) throw new Error('no VmHWM')
  return Number(kib) * 1024
}

async function serve(t: Test, yaml: string) {
  const dir = await tempDir(t, 'pt-bundle-large-serve-')
  const config = join(dir, 'config.yaml')
  await writeFile(
    config,
    `server: { host: 127.0.0.1, port: ${await freePort()} }
storage: { path: "${join(dir, 'data')}" }
admin: { token: "${TOKEN}" }
${yaml}`,
  )
  const child = spawnNode(t, CLI, ['serve', '--config', config], { env: cleanEnv() })
  return { url: await waitListening(child), pid: child.pid ?? 0 }
}

async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256')
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer)
  return `sha256:${hash.digest('hex')}`
}

t.test('a large bundle streams through export and import', { timeout: 600_000 }, async (t) => {
  const registry = await startRegistry(t)
  const dir = await tempDir(t, 'pt-bundle-large-')
  const image = await buildImage(join(dir, 'image'), {
    layers: [512 * MiB, 48 * MiB, 16 * MiB, 1 * MiB],
  })
  await registry.pushImage(image, 'library/big:1')
  const source = await serve(
    t,
    `docker:\n  registries:\n    - { name: docker.io, default: true, upstreams: [{ url: "${registry.url}" }] }\n`,
  )
  const airgap = await serve(
    t,
    `offline: true\ndocker:\n  registries:\n    - { name: docker.io, default: true, upstreams: [{ url: "http://127.0.0.1:${await freePort()}" }] }\n`,
  )
  const bundle = join(dir, 'big.tar')
  const env = cleanEnv({ PULLTHROUGH_ADMIN_TOKEN: TOKEN })
  const exported = await runCli(
    t,
    ['export', '--images', 'big:1', '--out', bundle, '--url', source.url],
    { env },
  )
  t.equal(exported.code, 0, exported.stderr)
  const layers = image.manifests[0]!.layers
  const bytes = layers.reduce((n, l) => n + l.size, 0)
  t.ok((await stat(bundle)).size > bytes, 'the bundle holds every layer')

  const imported = await runCli(t, ['import', bundle, '--url', airgap.url], { env })
  t.equal(imported.code, 0, imported.stderr)
  t.match(imported.stdout, /added \d+ blobs and files/)

  const big = layers[0]!
  const res = await request(`${airgap.url}/v2/library/big/blobs/${big.digest}`)
  t.equal(res.statusCode, 200)
  const served = join(dir, 'served')
  await writeFile(served, res.body)
  t.equal(await sha256File(served), big.digest, 'the air-gapped cache serves the layer whole')

  for (const [side, pid] of [
    ['export', source.pid],
    ['import', airgap.pid],
  ] as const) {
    const peak = await peakRss(pid)
    t.comment(
      `${side} server peak RSS ${(peak / MiB).toFixed(0)} MiB for a ${(bytes / MiB).toFixed(0)} MiB bundle`,
    )
    t.ok(
      peak < MAX_PEAK_RSS_BYTES,
      `the ${side} side streams (peak ${(peak / MiB).toFixed(0)} MiB)`,
    )
  }
})
