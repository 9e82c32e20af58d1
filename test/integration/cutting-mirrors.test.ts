/**
 * Mirrors that keep cutting transfers, with real clients: a fill continues
 * the remaining range from the next mirror that has the same bytes, and gives
 * up only when no mirror makes progress. skopeo copies images whose blobs a
 * mirror cuts after 1 MiB, and pip installs an 8 MB wheel whose files host
 * cuts after 1 MiB while another upstream of the index lists the same file.
 */
import { createHash } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { request as httpRequest } from 'node:http'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { startApp, type TestApp } from '../helpers/app.ts'
import { tempDir } from '../helpers/config.ts'
import { fakeUpstream, type FakeUpstream, type Handler } from '../helpers/fake-upstream.ts'
import { buildImage, pullImage, type PushedImage } from '../helpers/images.ts'
import { metricValue } from '../helpers/pool.ts'
import { BIG_PROJECT, bigPypiPackages, pip } from '../helpers/pypi-packages.ts'
import { indexYaml, startMirrorUpstream, startPypiUpstream } from '../helpers/pypi-upstream.ts'
import { startRegistry, type TestRegistry } from '../helpers/registry.ts'

const KiB = 1024
const MiB = 1024 * KiB
/** Where a cutting mirror drops every blob or file response. */
const CUT_AFTER_BYTES = MiB
/** pip may take a while for 8 MB on a loaded machine. */
const PIP_TIMEOUT_MS = 120_000

/**
 * A proxy in front of a real registry. While `cutBlobs` is set, every blob GET
 * answer (200 or 206) is dropped after that many body bytes; the rest passes
 * unchanged. The fake upstream records every request.
 */
function proxyTo(registry: TestRegistry, cut: { blobsAfter: number | undefined }): Handler {
  const target = new URL(registry.url)
  return (req, res) =>
    new Promise<void>((resolve) => {
      const headers = { ...req.headers, host: target.host }
      const forward = httpRequest(
        new URL(req.url ?? '/', target),
        { method: req.method, headers },
        (up) => {
          const status = up.statusCode ?? 502
          const isBlob = req.method === 'GET' && /\/blobs\/sha256:/.test(req.url ?? '')
          const cutAt = isBlob && status < 300 ? cut.blobsAfter : undefined
          const upHeaders = { ...up.headers }
          delete upHeaders.connection
          res.writeHead(status, upHeaders)
          if (cutAt === undefined) {
            up.pipe(res)
            up.once('end', resolve)
            return
          }
          let sent = 0
          up.on('data', (chunk: Buffer) => {
            if (sent >= cutAt) return
            const part = chunk.subarray(0, cutAt - sent)
            sent += part.length
            if (sent < cutAt) {
              res.write(part)
              return
            }
            // The last allowed bytes, then the connection goes: the client sees a short body.
            res.write(part, () => res.destroy())
            up.destroy()
            resolve()
          })
          up.once('end', () => {
            res.end()
            resolve()
          })
        },
      )
      forward.once('error', () => {
        res.destroy()
        resolve()
      })
      req.pipe(forward)
    })
}

/** The GETs `proxy` received for one blob. */
function blobGets(proxy: FakeUpstream, digest: string) {
  return proxy.requests.filter((r) => r.method === 'GET' && r.url.endsWith(`/blobs/${digest}`))
}

interface Mirrors {
  readonly a: FakeUpstream
  readonly b: FakeUpstream
  readonly cutA: { blobsAfter: number | undefined }
  readonly cutB: { blobsAfter: number | undefined }
  readonly image: PushedImage
}

/** Two real registries holding the same image, each behind its own proxy. */
async function mirrors(t: Test, layers: readonly number[]): Promise<Mirrors> {
  const dir = await tempDir(t, 'pt-images-')
  const [regA, regB] = await Promise.all([startRegistry(t), startRegistry(t)])
  const built = await buildImage(join(dir, 'app'), { layers })
  const image = await regA.pushImage(built, 'library/app:1.0')
  const onB = await regB.pushImage(built, 'library/app:1.0')
  if (onB.digest !== image.digest) throw new Error('the registries hold different images')
  const cutA = { blobsAfter: undefined as number | undefined }
  const cutB = { blobsAfter: undefined as number | undefined }
  const a = await fakeUpstream(t, proxyTo(regA, cutA))
  const b = await fakeUpstream(t, proxyTo(regB, cutB))
  return { a, b, cutA, cutB, image }
}

function dockerYaml(m: Mirrors): string {
  return `docker:
  registries:
    - name: docker.io
      default: true
      upstreams: [{ url: "${m.a.url}" }, { url: "${m.b.url}" }]
      retry: { attempts: 1 }
`
}

async function copyImage(t: Test, app: TestApp, image: PushedImage) {
  const out = await tempDir(t, 'pt-out-')
  const pulled = await pullImage(t, `${new URL(app.url).host}/library/app:1.0`, out)
  t.equal(pulled.digest, image.digest, "skopeo got the upstream's image digest")
  return out
}

t.test(
  'skopeo copies a multi-layer image on the first try while mirror A cuts every blob after 1 MiB',
  async (t) => {
    const m = await mirrors(t, [3 * MiB, 4 * MiB, 5 * MiB])
    m.cutA.blobsAfter = CUT_AFTER_BYTES
    const app = await startApp(t, { yaml: dockerYaml(m) })
    await copyImage(t, app, m.image)
    const layers = m.image.manifests[0]?.layers ?? []
    t.equal(layers.length, 3)
    for (const [i, layer] of layers.entries()) {
      t.equal(blobGets(m.a, layer).length, 1, `layer ${i}: mirror A was asked once, and cut`)
      const fromB = blobGets(m.b, layer)
      t.equal(fromB.length, 1, `layer ${i}: mirror B sent the rest`)
      t.equal(fromB[0]?.headers.range, `bytes=${CUT_AFTER_BYTES}-`, 'from the byte A reached')
    }
    const metrics = app.app.deps.metrics
    t.equal(await metricValue(metrics.upstreamResumes, { upstream: m.a.url }), layers.length)
    t.equal(await metricValue(metrics.digestMismatches), 0)
  },
)

t.test(
  'skopeo copies an image whose 12 MiB layer both mirrors cut every 1 MiB: the mirrors take turns',
  async (t) => {
    const m = await mirrors(t, [64 * KiB, 12 * MiB])
    m.cutA.blobsAfter = CUT_AFTER_BYTES
    m.cutB.blobsAfter = CUT_AFTER_BYTES
    const app = await startApp(t, { yaml: dockerYaml(m) })
    await copyImage(t, app, m.image)
    const big = m.image.manifests[0]?.layers[1] ?? ''
    const fromA = blobGets(m.a, big).length
    const fromB = blobGets(m.b, big).length
    t.ok(fromA + fromB >= 12, `${fromA + fromB} requests of 1 MiB each`)
    t.ok(Math.abs(fromA - fromB) <= 1, `the mirrors took turns (A ${fromA}, B ${fromB})`)
  },
)

t.test(
  "pip installs an 8 MB wheel on the first try while the first upstream's files host cuts after 1 MiB",
  async (t) => {
    const packages = await bigPypiPackages()
    const wheel = packages.project(BIG_PROJECT).files.find((f) => f.kind === 'wheel')!
    t.ok(wheel.size > 7 * MiB, `the wheel has ${wheel.size} bytes`)
    const first = await startPypiUpstream(t, { packages })
    const second = await startMirrorUpstream(t, { packages })
    first.files.cut(first.fileUrl(wheel), CUT_AFTER_BYTES)
    const app = await startApp(t, { yaml: indexYaml([first, second]) })

    const target = await tempDir(t, 'pt-site-')
    const host = new URL(app.url).host
    const index = ['--index-url', `${app.url}/simple/`, '--trusted-host', host]
    const run = await pip(t, ['install', ...index, '--target', target, BIG_PROJECT], {
      timeoutMs: PIP_TIMEOUT_MS,
    })
    t.equal(run.code, 0, run.stderr)
    t.match(run.stdout, /Successfully installed big-1\.0/)

    t.equal(first.files.count(first.fileUrl(wheel)), 1, 'the cutting files host was asked once')
    const fromSecond = second.requestsTo(second.fileUrl(wheel))
    t.equal(fromSecond.length, 1, 'the second upstream sent the rest')
    t.equal(fromSecond[0]?.headers.range, `bytes=${CUT_AFTER_BYTES}-`, 'from the byte reached')
    const pulls = app.logs.lines.filter((l) => l.msg === 'pull' && l.file === wheel.filename)
    t.equal(pulls.length, 1, 'pip asked pullthrough for the wheel once')
    t.match(pulls[0], { cache: 'miss', bytes: wheel.size })
    const stored = await readFile(
      join(app.storagePath, 'blobs/sha256', wheel.sha256.slice(0, 2), wheel.sha256),
    )
    t.equal(createHash('sha256').update(stored).digest('hex'), wheel.sha256, 'and it is cached')
  },
)
