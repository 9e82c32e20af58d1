/**
 * Node version benchmark: the same cold and warm blob GETs through the real
 * `pullthrough serve` (src/cli.ts), run by each given node binary, side by
 * side in one run.
 *
 * nginx on loopback is the upstream (sendfile; `--upstream-rate` models a WAN
 * link). Each node binary gets its own pullthrough process and empty store,
 * all running for the whole benchmark; `curl` is the client. Every version
 * first pulls a small blob cold and warm (unmeasured), so the hot paths are
 * compiled before anything is measured, as in a cache that has run for a while.
 * Then, round by round, each version GETs a new blob (cold: the fill from the
 * upstream, streamed to the client), and afterwards the first blob again
 * (warm: from the store). The order of the versions alternates every round,
 * so on a loaded machine both see the same load on average.
 *
 * Per GET: wall time (curl's), CPU seconds of the server process (user and
 * system, all threads, until it goes idle after the response: a cold GET's
 * fsync and rename included), split into the main (JavaScript) thread and
 * the others (V8's compiler and GC helpers, the libuv threadpool, the hash
 * workers), its minor page faults, and the garbage collections of its main
 * thread as bench/gc-probe.ts reports them (count and pauses). Per
 * phase: the server's peak RSS (VmHWM, reset before the phase). A GET straight
 * from nginx each round shows how loaded the machine was.
 *
 * With `--checkout DIR` (repeatable) each node binary also runs each given
 * checkout of pullthrough (a copy of another commit with this one's
 * node_modules linked in, say), so code before and after a change is
 * compared in one run; the default is this checkout.
 *
 * Usage: npm run bench:node-versions -- --node node --node /path/to/node24/bin/node
 *        [--size 200MiB --runs 3 --warm-runs 3 --verify-on-read on|off
 *         --upstream-rate 100MB --warmup-size 16MiB --checkout DIR --cpu-prof-dir DIR
 *         --parallel 5]
 * With `--parallel N`, each GET is N GETs of distinct blobs at once (N curls),
 * as docker and containerd pull an image's layers; its wall time is the
 * slowest of them, its CPU and GCs those of the whole batch.
 * With `--cpu-prof-dir`, each server writes a V8 CPU profile of its whole life
 * there when it stops, and the benchmark writes `windows.json`, the span of
 * each measured GET: `node --import tsx bench/profile-summary.ts --windows
 * DIR/windows.json --phase cold DIR/<n>-<version>/*.cpuprofile` sums the self
 * time of the cold GETs of each profile. The ratio columns compare each
 * server with the first.
 */
import { execFileSync, spawn } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { createWriteStream } from 'node:fs'
import { chmod, mkdir, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { basename, join, resolve } from 'node:path'
import { createInterface } from 'node:readline'
import { parseArgs } from 'node:util'
import { parseSize } from '../src/config/units.ts'
import { startNginx } from './nginx.ts'
import {
  cleanUp as cleanUpAll,
  cleanUpOnSignals,
  machineLine,
  median,
  oneOf,
  peakRssMb,
  positiveInt,
  resetPeakRss,
  say,
  startPullthrough,
  upstreamRate,
  type Pullthrough,
} from './shared.ts'
import { Teardowns } from './teardowns.ts'

const { values } = parseArgs({
  options: {
    node: { type: 'string', multiple: true },
    checkout: { type: 'string', multiple: true },
    size: { type: 'string', default: '200MiB' },
    runs: { type: 'string', default: '3' },
    'warm-runs': { type: 'string', default: '3' },
    'verify-on-read': { type: 'string', default: 'on' },
    'upstream-rate': { type: 'string' },
    'warmup-size': { type: 'string', default: '16MiB' },
    'cpu-prof-dir': { type: 'string' },
    // Blobs per GET: that many distinct blobs fetched at once, as a client pulls an image's layers.
    parallel: { type: 'string', default: '1' },
  },
})

const NODES = values.node ?? [process.execPath]
const CHECKOUTS = (values.checkout ?? [join(import.meta.dirname, '..')]).map((dir) => resolve(dir))
const BLOB_BYTES = parseSize(values.size) ?? 200 * 2 ** 20
const COLD_RUNS = positiveInt('runs', values.runs)
const WARM_RUNS = positiveInt('warm-runs', values['warm-runs'])
const VERIFY_ON_READ = oneOf('verify-on-read', values['verify-on-read'], ['on', 'off']) === 'on'
const UPSTREAM_RATE = upstreamRate(values['upstream-rate'])
const PARALLEL = positiveInt('parallel', values.parallel)
const WARMUP_BYTES = parseSize(values['warmup-size']) ?? 16 * 2 ** 20
const CPU_PROF_DIR =
  values['cpu-prof-dir'] === undefined ? undefined : resolve(values['cpu-prof-dir'])

const REPOSITORY = 'library/bench'
const TSX = import.meta.resolve('tsx')
const GC_PROBE = join(import.meta.dirname, 'gc-probe.ts')
/** Bound on one GET (a cold 200 MiB GET through a 100 MB/s upstream takes about 2 s). */
const GET_TIMEOUT_S = 300
/** A server counts as idle after a GET once its CPU time grows less than this per poll. */
const IDLE_CPU_S = 0.005
/** Longer than bench/gc-probe.ts's report interval, so an idle server has reported its GCs. */
const IDLE_POLL_MS = 150
/** Bound on waiting for a server to go idle after a GET. */
const IDLE_TIMEOUT_MS = 5_000
const RANDOM_CHUNK_BYTES = 4 * 2 ** 20

/** Garbage collections of a server's main thread (bench/gc-probe.ts). */
interface GcTotals {
  readonly minor: number
  readonly major: number
  readonly other: number
  readonly pauseMs: number
}

const NO_GCS: GcTotals = { minor: 0, major: 0, other: 0, pauseMs: 0 }

/** Parses a `pt-gc <minor> <major> <other> <pause ms>` line of bench/gc-probe.ts. */
function parseGcLine(line: string): GcTotals | undefined {
  const match = /^pt-gc (\d+) (\d+) (\d+) ([\d.]+)$/.exec(line)
  if (!match) return undefined
  const [minor, major, other, pauseMs] = match.slice(1).map(Number)
  return { minor: minor ?? 0, major: major ?? 0, other: other ?? 0, pauseMs: pauseMs ?? 0 }
}

function gcsBetween(before: GcTotals, after: GcTotals): GcTotals {
  return {
    minor: after.minor - before.minor,
    major: after.major - before.major,
    other: after.other - before.other,
    pauseMs: after.pauseMs - before.pauseMs,
  }
}

interface Server {
  readonly node: string
  /** `v20.20.2` */
  readonly version: string
  /** Column heading: the node version, and the checkout when there are several. */
  readonly label: string
  readonly pt: Pullthrough
  readonly pid: number
  /** The server's GCs so far, as last reported. */
  gcs: GcTotals
}

interface Get {
  readonly seconds: number
  readonly userCpu: number
  readonly sysCpu: number
  /** User + system CPU of the main thread (the JavaScript thread); the rest is V8's helpers, the threadpool and workers. */
  readonly mainCpu: number
  readonly faults: number
  readonly gcs: GcTotals
}

if (CPU_PROF_DIR !== undefined) await mkdir(CPU_PROF_DIR, { recursive: true })
const teardowns = new Teardowns()
cleanUpOnSignals(teardowns)
const work = await mkdtemp(join(tmpdir(), 'pt-bench-node-'))
teardowns.teardown(() => rm(work, { recursive: true, force: true }))
// nginx workers run as an unprivileged user when started by root: they must read the files.
await chmod(work, 0o755)
const files = join(work, 'files')
const blobsDir = join(files, 'v2', REPOSITORY, 'blobs')
await mkdir(blobsDir, { recursive: true })
await chmod(files, 0o755)

/** Writes `size` random bytes as the upstream's blob and returns its digest. */
async function makeBlob(size: number): Promise<string> {
  const temp = join(files, `blob-${randomBytes(6).toString('hex')}`)
  const out = createWriteStream(temp)
  const hash = createHash('sha256')
  for (let written = 0; written < size; written += RANDOM_CHUNK_BYTES) {
    const data = randomBytes(Math.min(RANDOM_CHUNK_BYTES, size - written))
    hash.update(data)
    if (!out.write(data)) await once(out, 'drain')
  }
  out.end()
  await once(out, 'finish')
  const digest = `sha256:${hash.digest('hex')}`
  await rename(temp, join(blobsDir, digest))
  return digest
}

interface ProcessTimes {
  /** CPU seconds (all threads) so far. */
  readonly user: number
  readonly sys: number
  /** Minor page faults so far: first touches of freshly mapped memory, mostly. */
  readonly faults: number
}

/** CPU times of the process (all threads) or, with `thread`, of that one thread. */
async function cpuTimes(pid: number, thread?: number): Promise<ProcessTimes> {
  const path = thread === undefined ? `/proc/${pid}/stat` : `/proc/${pid}/task/${thread}/stat`
  const stat = await readFile(path, 'utf8')
  // Fields after the parenthesised command name: minflt, utime and stime are fields 10, 14
  // and 15 (proc(5)), the third field being the first here.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return {
    user: Number(fields[11]) / CLOCK_TICKS,
    sys: Number(fields[12]) / CLOCK_TICKS,
    faults: Number(fields[7]),
  }
}
const CLOCK_TICKS = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100

/** Waits until the server's CPU time stops growing (the GET's work after the response is done). */
async function idle(pid: number): Promise<void> {
  const deadline = Date.now() + IDLE_TIMEOUT_MS
  let last = await cpuTimes(pid)
  while (Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, IDLE_POLL_MS))
    const now = await cpuTimes(pid)
    if (now.user + now.sys - last.user - last.sys < IDLE_CPU_S) return
    last = now
  }
}

/** One curl GET of `url` to /dev/null; fails unless it is a 200 of `size` bytes. Resolves to curl's total time. */
async function curl(url: string, size: number): Promise<number> {
  const child = spawn('curl', [
    '-s',
    '-o',
    '/dev/null',
    '--max-time',
    String(GET_TIMEOUT_S),
    '-w',
    '%{size_download} %{http_code} %{time_total}',
    url,
  ])
  let out = ''
  child.stdout.on('data', (d: Buffer) => (out += d.toString()))
  // 'close', not 'exit': stdout may still hold the -w line when the process exits.
  await once(child, 'close')
  const [got, status, total] = out.split(' ')
  if (status !== '200' || Number(got) !== size) throw new Error(`bad GET of ${url}: ${out}`)
  return Number(total)
}

/** GETs of every blob of `digests` from `base` at once; resolves to the slowest one's time. */
async function curlAll(base: string, digests: readonly string[], size: number): Promise<number> {
  const times = await Promise.all(
    digests.map((digest) => curl(`${base}/v2/${REPOSITORY}/blobs/${digest}`, size)),
  )
  return Math.max(...times)
}

/**
 * When profiling: the span of each measured GET on the monotonic clock in µs,
 * the clock of a `.cpuprofile`'s timestamps, so profile-summary.ts can keep
 * the samples of one phase.
 */
export interface ProfileWindow {
  readonly pid: number
  readonly phase: 'cold' | 'warm'
  readonly startUs: number
  readonly endUs: number
}
const windows: ProfileWindow[] = []
const monotonicUs = () => Number(process.hrtime.bigint() / 1000n)

async function measure(
  server: Server,
  digests: readonly string[],
  size: number,
  phase?: ProfileWindow['phase'],
): Promise<Get> {
  await idle(server.pid)
  const before = await cpuTimes(server.pid)
  const mainBefore = await cpuTimes(server.pid, server.pid)
  const gcBefore = server.gcs
  const startUs = monotonicUs()
  const seconds = await curlAll(server.pt.url, digests, size)
  await idle(server.pid)
  const after = await cpuTimes(server.pid)
  const mainAfter = await cpuTimes(server.pid, server.pid)
  if (phase) windows.push({ pid: server.pid, phase, startUs, endUs: monotonicUs() })
  return {
    seconds,
    userCpu: after.user - before.user,
    sysCpu: after.sys - before.sys,
    mainCpu: mainAfter.user + mainAfter.sys - mainBefore.user - mainBefore.sys,
    faults: after.faults - before.faults,
    gcs: gcsBetween(gcBefore, server.gcs),
  }
}

async function startServer(
  node: string,
  checkout: string,
  upstream: string,
  index: number,
): Promise<Server> {
  const version = execFileSync(node, ['--version'], { encoding: 'utf8' }).trim()
  const label = CHECKOUTS.length > 1 ? `node ${version}, ${basename(checkout)}` : `node ${version}`
  const nodeArgs = ['--import', TSX, '--import', GC_PROBE]
  if (CPU_PROF_DIR !== undefined)
    nodeArgs.push('--cpu-prof', '--cpu-prof-dir', join(CPU_PROF_DIR, `${index}-${version}`))
  const pt = await startPullthrough({
    dir: work,
    storage: join(work, `store-${index}`),
    verifyOnRead: VERIFY_ON_READ,
    node,
    nodeArgs,
    checkout,
    sections: `docker:
  registries:
    - { name: docker.io, default: true, upstreams: [{ url: "${upstream}" }] }
pypi: { indexes: [] }
`,
  })
  const pid = pt.child.pid
  if (pid === undefined) throw new Error(`pullthrough on ${node} has no pid`)
  const server: Server = { node, version, label, pt, pid, gcs: NO_GCS }
  createInterface({ input: pt.child.stdout ?? process.stdin }).on('line', (line) => {
    server.gcs = parseGcLine(line) ?? server.gcs
  })
  return server
}

/** Each server in turn, the first one rotating every round. */
function inRoundOrder(servers: readonly Server[], round: number): Server[] {
  const shift = round % servers.length
  return [...servers.slice(shift), ...servers.slice(0, shift)]
}

const fmt = (values: readonly number[], digits: number) =>
  `${median(values).toFixed(digits)} (${values.map((v) => v.toFixed(digits)).join(', ')})`

/** Each value after the first as a ratio to the first: `1.52x | 0.98x`. */
function ratios(values: readonly number[]): string {
  const [first = NaN, ...rest] = values
  return rest.map((v) => `${(v / first).toFixed(2)}x`).join(' | ')
}

function rows(
  label: string,
  servers: readonly Server[],
  results: ReadonlyMap<Server, readonly Get[]>,
  peaks: ReadonlyMap<Server, number>,
): void {
  const metrics: [string, (get: Get) => number, number][] = [
    ['wall s', (g) => g.seconds, 2],
    ['server CPU s (user+sys)', (g) => g.userCpu + g.sysCpu, 2],
    ['server user CPU s', (g) => g.userCpu, 2],
    ['server main thread CPU s', (g) => g.mainCpu, 2],
    [
      'server other threads CPU s (V8 helpers, threadpool, workers)',
      (g) => g.userCpu + g.sysCpu - g.mainCpu,
      2,
    ],
    ['server minor page faults (thousands)', (g) => g.faults / 1000, 1],
    ['GCs: young (scavenges)', (g) => g.gcs.minor, 0],
    ['GCs: full (Mark-Compacts)', (g) => g.gcs.major, 0],
    ['GC pauses ms (all kinds, marking steps too)', (g) => g.gcs.pauseMs, 0],
  ]
  for (const [name, pick, digits] of metrics) {
    const cells = servers.map((s) => (results.get(s) ?? []).map(pick))
    const medians = cells.map((c) => median(c))
    say(
      `| ${label}: ${name} | ${cells.map((c) => fmt(c, digits)).join(' | ')} | ${ratios(medians)} |`,
    )
  }
  const rss = servers.map((s) => peaks.get(s) ?? NaN)
  say(`| ${label}: peak RSS MB | ${rss.map((r) => r.toFixed(0)).join(' | ')} | ${ratios(rss)} |`)
}

try {
  say(`# pullthrough node versions benchmark, ${new Date().toISOString()}`)
  say(machineLine())
  const rate = UPSTREAM_RATE === undefined ? 'unlimited' : `${UPSTREAM_RATE / 1e6} MB/s`
  say(
    `${PARALLEL > 1 ? `${PARALLEL} blobs at once` : 'blob'} of ${BLOB_BYTES / 2 ** 20} MiB, ${COLD_RUNS} cold and ${WARM_RUNS} warm GETs per version, ` +
      `verifyOnRead ${VERIFY_ON_READ ? 'on' : 'off'}, upstream rate ${rate}, ` +
      `load average at start ${(await readFile('/proc/loadavg', 'utf8')).split(' ').slice(0, 3).join(' ')}`,
  )
  const warmup = WARMUP_BYTES > 0 ? [await makeBlob(WARMUP_BYTES)] : undefined
  const cold: string[][] = []
  for (let i = 0; i < COLD_RUNS; i++) {
    const round: string[] = []
    for (let j = 0; j < PARALLEL; j++) round.push(await makeBlob(BLOB_BYTES))
    cold.push(round)
  }
  // The upstream's new files go to disk now, not while the first round is measured.
  execFileSync('sync')

  const nginx = await startNginx({
    http: `  sendfile on;
  tcp_nopush on;
  keepalive_timeout 30;`,
    server: `    root ${files};
    location / { limit_rate ${UPSTREAM_RATE ?? 0}; }`,
    accessLog: false,
  })
  teardowns.teardown(() => nginx.stop())

  const servers: Server[] = []
  for (const checkout of CHECKOUTS)
    for (const node of NODES)
      servers.push(await startServer(node, checkout, nginx.url, servers.length))

  if (warmup !== undefined)
    for (const server of servers) {
      await measure(server, warmup, WARMUP_BYTES)
      await measure(server, warmup, WARMUP_BYTES)
    }

  const direct: number[] = []
  const coldResults = new Map<Server, Get[]>(servers.map((s) => [s, []]))
  const warmResults = new Map<Server, Get[]>(servers.map((s) => [s, []]))
  const coldPeaks = new Map<Server, number>()
  const warmPeaks = new Map<Server, number>()
  let peaksReset = true

  for (const server of servers) peaksReset &&= await resetPeakRss(server.pid)
  for (const [round, digests] of cold.entries()) {
    direct.push(await curlAll(nginx.url, digests, BLOB_BYTES))
    for (const server of inRoundOrder(servers, round))
      coldResults.get(server)?.push(await measure(server, digests, BLOB_BYTES, 'cold'))
  }
  for (const server of servers) coldPeaks.set(server, await peakRssMb(server.pid))

  for (const server of servers) peaksReset &&= await resetPeakRss(server.pid)
  const warm = cold[0] ?? []
  for (let round = 0; round < WARM_RUNS; round++)
    for (const server of inRoundOrder(servers, round))
      warmResults.get(server)?.push(await measure(server, warm, BLOB_BYTES, 'warm'))
  for (const server of servers) warmPeaks.set(server, await peakRssMb(server.pid))

  if (CPU_PROF_DIR !== undefined)
    await writeFile(join(CPU_PROF_DIR, 'windows.json'), JSON.stringify(windows, null, 1))
  say(`direct GET from nginx, s: ${fmt(direct, 2)}`)
  if (!peaksReset)
    say('peak RSS could not be reset between phases: it is the process lifetime peak')
  say('')
  const others = servers.slice(1)
  const ratioHeaders = others.map((s) => `${s.label} / ${servers[0]?.label ?? ''}`)
  say(
    `| measurement, median (runs) | ${[...servers.map((s) => s.label), ...ratioHeaders].join(' | ')} |`,
  )
  say(`|---|${[...servers, ...others].map(() => '---|').join('')}`)
  const mib = `${PARALLEL > 1 ? `${PARALLEL} x ` : ''}${BLOB_BYTES / 2 ** 20} MiB`
  rows(`cold GET ${mib}`, servers, coldResults, coldPeaks)
  rows(`warm GET ${mib}`, servers, warmResults, warmPeaks)
} finally {
  await cleanUpAll(teardowns)
}
