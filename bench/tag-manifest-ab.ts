/**
 * Warm tag-manifest GETs, A against B: two checkouts of pullthrough (say the
 * commit before a change and the change) run side by side as the real CLI,
 * both with their docker.io registry on one Debian docker-registry, and wrk
 * rounds against them alternate A B B A A B ... so load on the machine falls on
 * both alike. Reports per side the median requests/s and the server CPU per
 * request (user + system, from /proc), which moves less with load than
 * requests/s does. This is the path a change to per-request work (hooks,
 * decorations, the pull event) moves first; `bench:docker` measures it too,
 * but one process at a time, which this machine's noise swamps.
 *
 * Usage: npm run bench:manifest-ab -- --a /path/to/checkout-a [--b /path/to/checkout-b]
 *        [--rounds 6 --wrk-seconds 4 --connections 32 --threads 2 --cpu-prof DIR]
 * B defaults to this checkout. `--cpu-prof DIR` writes one V8 profile per side
 * (summarise with bench/profile-summary.ts).
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { buildImage } from '../test/helpers/images.ts'
import { startRegistry } from '../test/helpers/registry.ts'
import {
  cleanUp,
  cleanUpOnSignals,
  cpuSeconds,
  DOCKER_ACCEPT,
  machineLine,
  median,
  positiveInt,
  row,
  say,
  startPullthrough,
  type Pullthrough,
} from './shared.ts'
import { Teardowns } from './teardowns.ts'
import { runWrk } from './wrk.ts'

const { values } = parseArgs({
  options: {
    a: { type: 'string' },
    b: { type: 'string', default: resolve(import.meta.dirname, '..') },
    rounds: { type: 'string', default: '6' },
    'wrk-seconds': { type: 'string', default: '4' },
    connections: { type: 'string', default: '32' },
    threads: { type: 'string', default: '2' },
    'cpu-prof': { type: 'string' },
  },
})
if (values.a === undefined) throw new Error('--a <checkout> is required')
const SIDES = [
  { label: 'A', checkout: resolve(values.a) },
  { label: 'B', checkout: resolve(values.b) },
] as const
const ROUNDS = positiveInt('rounds', values.rounds)
const WRK_SECONDS = positiveInt('wrk-seconds', values['wrk-seconds'])
const CONNECTIONS = positiveInt('connections', values.connections)
const THREADS = positiveInt('threads', values.threads)

const REPOSITORY = 'library/bench'
/** Unmeasured requests per side before the first round, so both are JIT-warm. */
const WARMUP_SECONDS = 3
const HTTP_TIMEOUT_MS = 10_000

const teardowns = new Teardowns()
const work = await mkdtemp(join(tmpdir(), 'pt-bench-ab-'))
teardowns.teardown(() => rm(work, { recursive: true, force: true }))
cleanUpOnSignals(teardowns)

const manifestUrl = (pt: Pullthrough) => `${pt.url}/v2/${REPOSITORY}/manifests/latest`
const wrk = async (pt: Pullthrough, seconds: number) => {
  const result = await runWrk({
    url: manifestUrl(pt),
    threads: THREADS,
    connections: CONNECTIONS,
    durationS: seconds,
    headers: { Accept: DOCKER_ACCEPT },
  })
  if (result.non2xx > 0 || result.socketErrors > 0)
    throw new Error(`wrk: ${result.non2xx} non-2xx, ${result.socketErrors} socket errors`)
  return result
}

try {
  const registry = await startRegistry(teardowns.asTest())
  const image = await buildImage(join(work, 'image'), { layers: [1024] })
  await registry.pushImage(image, `${REPOSITORY}:latest`, { format: 'v2s2' })

  const servers: Pullthrough[] = []
  for (const side of SIDES) {
    const pt = await startPullthrough({
      dir: work,
      storage: join(work, `store-${side.label}`),
      verifyOnRead: true,
      checkout: side.checkout,
      nodeArgs:
        values['cpu-prof'] === undefined
          ? []
          : ['--cpu-prof', `--cpu-prof-dir=${join(values['cpu-prof'], side.label)}`],
      sections: `docker:
  registries:
    - { name: docker.io, default: true, tagTTL: 1h, upstreams: [{ url: "${registry.url}" }] }
pypi: { indexes: [] }
`,
    })
    servers.push(pt)
    const res = await fetch(manifestUrl(pt), {
      headers: { accept: DOCKER_ACCEPT },
      signal: AbortSignal.timeout(HTTP_TIMEOUT_MS),
    })
    await res.arrayBuffer()
    if (res.status !== 200) throw new Error(`${side.label}: manifest GET answered ${res.status}`)
    await wrk(pt, WARMUP_SECONDS)
  }

  say(`# pullthrough warm tag-manifest A/B, ${new Date().toISOString()}`)
  say(machineLine())
  for (const side of SIDES) say(`${side.label}: ${side.checkout}`)
  say(
    `wrk -t${THREADS} -c${CONNECTIONS}, ${ROUNDS} rounds of ${WRK_SECONDS} s per side, ABBA order`,
  )
  const rps: number[][] = [[], []]
  const cpuUs: number[][] = [[], []]
  const p99: number[][] = [[], []]
  for (let round = 0; round < ROUNDS; round++) {
    const order = round % 2 === 0 ? [0, 1] : [1, 0]
    for (const i of order) {
      const pt = servers[i] as Pullthrough
      const before = await cpuSeconds(pt.child.pid)
      const result = await wrk(pt, WRK_SECONDS)
      const used = (await cpuSeconds(pt.child.pid)) - before
      rps[i]?.push(result.requestsPerSec)
      cpuUs[i]?.push((used * 1e6) / result.requests)
      p99[i]?.push(result.p99Ms)
    }
  }
  say('')
  row(['side', 'requests/s, median (runs)', 'server CPU µs per request', 'p99 ms'])
  row(['---', '---:', '---:', '---:'])
  for (const [i, side] of SIDES.entries()) {
    const list = (values: readonly number[]) => values.map((v) => v.toFixed(0)).join(', ')
    row([
      side.label,
      `${median(rps[i] ?? []).toFixed(0)} (${list(rps[i] ?? [])})`,
      `${median(cpuUs[i] ?? []).toFixed(0)} (${list(cpuUs[i] ?? [])})`,
      median(p99[i] ?? []).toFixed(1),
    ])
  }
  const ratio = median(rps[1] ?? []) / median(rps[0] ?? [])
  say(`\nB / A requests/s: ${ratio.toFixed(2)}x`)
} finally {
  await cleanUp(teardowns)
}
