/**
 * Warm GETs, A against B: two checkouts of pullthrough (say the commit before a
 * change and the change) run side by side as the real CLI, both with their
 * docker.io registry on one Debian docker-registry, and wrk rounds against them
 * alternate A B B A A B ... so load on the machine falls on both alike.
 *
 * `--path manifest` (default) GETs a tag's manifest, the path per-request work
 * (hooks, decorations, the pull event) moves first; `--path page` GETs a PyPI
 * project page of 300 links as HTML (bench/pypi-index.ts, served by nginx as
 * the index), per-request work with a 75 KB body; `--path blob` GETs one
 * layer of `--blob-mib` MiB, the path per-byte work moves.
 *
 * Two processes of the same code differ by up to 10% for their whole life (JIT
 * and heap layout), and on 2 cores the scheduler sometimes puts wrk beside the
 * server, halving a round: so `--pairs` starts that many fresh pairs and the
 * verdict is the median of the pairs' ratios, and by default each server is
 * pinned to CPU 0 and wrk to CPU 1 (`--unpinned` to leave both to the kernel).
 * Reports per side requests/s (MB/s for blobs) and the server CPU per request
 * (per GB for blobs; user + system, from /proc), which moves less than
 * throughput does.
 *
 * Usage: npm run bench:ab -- --a /path/to/checkout-a [--b /path/to/checkout-b]
 *        [--path manifest|page|blob --blob-mib 64 --pairs 3 --rounds 6 --wrk-seconds 4
 *         --connections N --unpinned --cpu-prof DIR]
 * B defaults to this checkout. `--cpu-prof DIR` writes one V8 profile per side
 * and pair (summarise with bench/profile-summary.ts).
 */
import { execFile } from 'node:child_process'
import { chmod, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { parseArgs, promisify } from 'node:util'
import { buildImage } from '../test/helpers/images.ts'
import { startNginx } from './nginx.ts'
import { writeProjectPage } from './pypi-index.ts'
import { startRegistry } from '../test/helpers/registry.ts'
import {
  cleanUp,
  cleanUpOnSignals,
  cpuSeconds,
  DOCKER_ACCEPT,
  machineLine,
  median,
  oneOf,
  positiveInt,
  row,
  say,
  startPullthrough,
  stop,
  type Pullthrough,
} from './shared.ts'
import { Teardowns } from './teardowns.ts'
import { runWrk } from './wrk.ts'

const { values } = parseArgs({
  options: {
    a: { type: 'string' },
    b: { type: 'string', default: resolve(import.meta.dirname, '..') },
    path: { type: 'string', default: 'manifest' },
    'blob-mib': { type: 'string', default: '64' },
    pairs: { type: 'string', default: '3' },
    rounds: { type: 'string', default: '6' },
    'wrk-seconds': { type: 'string', default: '4' },
    connections: { type: 'string' },
    unpinned: { type: 'boolean', default: false },
    'cpu-prof': { type: 'string' },
  },
})
if (values.a === undefined) throw new Error('--a <checkout> is required')
const SIDES = [
  { label: 'A', checkout: resolve(values.a) },
  { label: 'B', checkout: resolve(values.b) },
] as const
const PATH = oneOf('path', values.path, ['manifest', 'page', 'blob'] as const)
const BLOB_BYTES = positiveInt('blob-mib', values['blob-mib']) * 1024 * 1024
const PAIRS = positiveInt('pairs', values.pairs)
const ROUNDS = positiveInt('rounds', values.rounds)
const WRK_SECONDS = positiveInt('wrk-seconds', values['wrk-seconds'])
/** Manifests: enough connections to keep the event loop busy; blobs: a few parallel pulls. */
const CONNECTIONS = positiveInt('connections', values.connections ?? (PATH === 'blob' ? '4' : '32'))
/** Pinned: the servers share CPU 0 (only one is under load at a time), wrk has CPU 1. */
const SERVER_CPU = '0'
const WRK_CPU = '1'
const PINNED = !values.unpinned
const THREADS = PINNED ? 1 : 2

const REPOSITORY = 'library/bench'
const PROJECT = 'bench'
/** Unmeasured requests per side before the first round, so both are JIT-warm. */
const WARMUP_SECONDS = 3
const HTTP_TIMEOUT_MS = 60_000
const TASKSET_TIMEOUT_MS = 10_000

const execFileAsync = promisify(execFile)
const teardowns = new Teardowns()
const work = await mkdtemp(join(tmpdir(), 'pt-bench-ab-'))
teardowns.teardown(() => rm(work, { recursive: true, force: true }))
cleanUpOnSignals(teardowns)
// nginx workers run as an unprivileged user when started by root: they must read the index.
await chmod(work, 0o755)

interface Round {
  readonly perSecond: number
  /** Server CPU µs per request (manifests) or CPU s per GB (blobs). */
  readonly cpu: number
  readonly p99Ms: number
}

try {
  const index = join(work, 'index')
  await writeProjectPage(index, PROJECT, [])
  const nginx = await startNginx({
    server: `    root ${index};
    location /simple/ { default_type text/html; index index.html; }`,
    accessLog: false,
  })
  teardowns.teardown(() => nginx.stop())
  const registry = await startRegistry(teardowns.asTest())
  const layerBytes = PATH === 'blob' ? BLOB_BYTES : 1024
  const image = await buildImage(join(work, 'image'), { layers: [layerBytes] })
  const pushed = await registry.pushImage(image, `${REPOSITORY}:latest`, { format: 'v2s2' })
  const layer = pushed.manifests[0]?.layers[0]
  if (layer === undefined) throw new Error('the pushed image has no layer')
  const target = (pt: Pullthrough) =>
    PATH === 'blob'
      ? `${pt.url}/v2/${REPOSITORY}/blobs/${layer}`
      : PATH === 'page'
        ? `${pt.url}/simple/${PROJECT}/`
        : `${pt.url}/v2/${REPOSITORY}/manifests/latest`
  const accept = PATH === 'page' ? 'text/html' : DOCKER_ACCEPT

  const wrk = async (pt: Pullthrough, seconds: number) => {
    const result = await runWrk({
      url: target(pt),
      threads: THREADS,
      connections: CONNECTIONS,
      durationS: seconds,
      headers: { Accept: accept },
      cpus: PINNED ? WRK_CPU : undefined,
    })
    if (result.non2xx > 0 || result.socketErrors > 0)
      throw new Error(`wrk: ${result.non2xx} non-2xx, ${result.socketErrors} socket errors`)
    return result
  }

  const startSide = async (side: (typeof SIDES)[number], pair: number) => {
    const pt = await startPullthrough({
      dir: work,
      storage: join(work, `store-${side.label}-${pair}`),
      verifyOnRead: true,
      checkout: side.checkout,
      nodeArgs:
        values['cpu-prof'] === undefined
          ? []
          : ['--cpu-prof', `--cpu-prof-dir=${join(values['cpu-prof'], `${side.label}${pair}`)}`],
      sections: `docker:
  registries:
    - { name: docker.io, default: true, tagTTL: 1h, upstreams: [{ url: "${registry.url}" }] }
pypi:
  indexes:
    - { name: pypi, default: true, indexTTL: 1h, upstreams: [{ url: "${nginx.url}/simple/" }] }
`,
    })
    if (PINNED)
      await execFileAsync('taskset', ['-a', '-p', '-c', SERVER_CPU, String(pt.child.pid)], {
        timeout: TASKSET_TIMEOUT_MS,
      })
    // The first GET fills the cache; the warm-up rounds after it are all hits.
    const res = await fetch(target(pt), {
      headers: { accept },
      signal: AbortSignal.timeout(HTTP_TIMEOUT_MS),
    })
    await res.arrayBuffer()
    if (res.status !== 200) throw new Error(`${side.label}: GET ${PATH} answered ${res.status}`)
    await wrk(pt, WARMUP_SECONDS)
    return pt
  }

  const measure = async (pt: Pullthrough): Promise<Round> => {
    const before = await cpuSeconds(pt.child.pid)
    const result = await wrk(pt, WRK_SECONDS)
    const used = (await cpuSeconds(pt.child.pid)) - before
    if (PATH === 'blob') {
      const bytes = result.requests * layerBytes
      return {
        perSecond: (result.requestsPerSec * layerBytes) / 1e6,
        cpu: used / (bytes / 1e9),
        p99Ms: result.p99Ms,
      }
    }
    return {
      perSecond: result.requestsPerSec,
      cpu: (used * 1e6) / result.requests,
      p99Ms: result.p99Ms,
    }
  }

  const unit = PATH === 'blob' ? 'MB/s' : 'requests/s'
  const cpuUnit = PATH === 'blob' ? 'server CPU s per GB' : 'server CPU µs per request'
  say(`# pullthrough warm ${PATH} A/B, ${new Date().toISOString()}`)
  say(machineLine())
  for (const side of SIDES) say(`${side.label}: ${side.checkout}`)
  say(
    `${PATH === 'blob' ? `blob ${BLOB_BYTES / 1024 / 1024} MiB, ` : ''}wrk -t${THREADS} -c${CONNECTIONS}, ` +
      `${PAIRS} fresh pairs of processes, ${ROUNDS} rounds of ${WRK_SECONDS} s per side each, ABBA order, ` +
      (PINNED ? `servers on CPU ${SERVER_CPU}, wrk on CPU ${WRK_CPU}` : 'unpinned'),
  )
  say('')
  row(['pair', 'side', `${unit}, median (runs)`, `${cpuUnit}, median (runs)`, 'p99 ms'])
  row(['---:', '---', '---:', '---:', '---:'])
  const decimals = PATH === 'blob' ? 2 : 0
  const list = (values: readonly number[], digits: number) =>
    values.map((v) => v.toFixed(digits)).join(', ')
  const ratios: number[] = []
  const cpuRatios: number[] = []
  for (let pair = 1; pair <= PAIRS; pair++) {
    const servers: Pullthrough[] = []
    for (const side of SIDES) servers.push(await startSide(side, pair))
    const rounds: Round[][] = [[], []]
    for (let round = 0; round < ROUNDS; round++) {
      const order = round % 2 === 0 ? [0, 1] : [1, 0]
      for (const i of order) rounds[i]?.push(await measure(servers[i] as Pullthrough))
    }
    for (const pt of servers) await stop(pt.child)
    const medians = rounds.map((r) => ({
      perSecond: median(r.map((x) => x.perSecond)),
      cpu: median(r.map((x) => x.cpu)),
    }))
    for (const [i, side] of SIDES.entries()) {
      const r = rounds[i] ?? []
      row([
        pair,
        side.label,
        `${medians[i]?.perSecond.toFixed(0)} (${list(
          r.map((x) => x.perSecond),
          0,
        )})`,
        `${medians[i]?.cpu.toFixed(decimals)} (${list(
          r.map((x) => x.cpu),
          decimals,
        )})`,
        median(r.map((x) => x.p99Ms)).toFixed(1),
      ])
    }
    ratios.push((medians[1]?.perSecond ?? NaN) / (medians[0]?.perSecond ?? NaN))
    cpuRatios.push((medians[1]?.cpu ?? NaN) / (medians[0]?.cpu ?? NaN))
  }
  const x = (values: readonly number[]) => values.map((v) => `${v.toFixed(2)}x`).join(', ')
  say(`\nB / A ${unit}, median of the pairs: ${median(ratios).toFixed(2)}x (${x(ratios)})`)
  say(`B / A ${cpuUnit}, median of the pairs: ${median(cpuRatios).toFixed(2)}x (${x(cpuRatios)})`)
} finally {
  await cleanUp(teardowns)
}
