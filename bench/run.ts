/**
 * Blob serving benchmark. In one run, on loopback, side by side:
 *   - nginx serves the blobs statically under registry paths
 *     (`/v2/<name>/blobs/<digest>`, sendfile): the warm baseline, and the
 *     upstream of the others;
 *   - pullthrough, the real CLI (`pullthrough serve`, the built dist/cli.js with a config file),
 *     with storage.verifyOnRead off, changed and on;
 *   - CNCF Distribution in proxy mode (Debian's docker-registry) in front of
 *     the same nginx.
 * For each server: a cold GET against the same GET straight from nginx, 50
 * concurrent cold GETs of one blob (how many reached the upstream, total
 * time), then, in a freshly started process, its first warm GET alone and
 * warm GETs at concurrency 1, 8 and 32, each as a ratio to nginx measured
 * right before it, the CPU seconds per GB each server spent on them (user +
 * system, from /proc; nginx's over all its warm runs so far), and the
 * server's peak RSS. Each row names issue #13's target, where it has one, and
 * whether this run met it. Then bare node:http sending the warm file with no
 * hashing or bookkeeping (bench/bare-server.ts): the ceiling of Node's own
 * reads and writes beside nginx's sendfile. The last rows hold each mode's
 * cold GET against Distribution's. Bounded: every load is a fixed number of downloads.
 * Usage: npm run bench [-- --warm-size 1GiB --cold-size 200MiB --upstream-rate 100MB]
 */
import { execFileSync } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { createWriteStream } from 'node:fs'
import { chmod, mkdir, mkdtemp, readFile, rename, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { parseSize } from '../src/config/units.ts'
import { startDistributionProxy } from './distribution.ts'
import { startNginx, type Nginx } from './nginx.ts'
import {
  cpuSeconds,
  load,
  machineLine,
  peakRssMb,
  resetPeakRss,
  row,
  say,
  startBareServer,
  startPullthrough,
  stop,
  toolVersion,
  verdict,
} from './shared.ts'

const { values } = parseArgs({
  options: {
    'warm-size': { type: 'string', default: '1GiB' },
    'cold-size': { type: 'string', default: '200MiB' },
    // Per-connection rate of the upstream for the cold blobs (e.g. 100MB), to model a WAN link.
    'upstream-rate': { type: 'string' },
  },
})
const UPSTREAM_RATE =
  values['upstream-rate'] === undefined ? undefined : parseSize(values['upstream-rate'])
const WARM_BYTES = parseSize(values['warm-size']) ?? 2 ** 30
const COLD_BYTES = parseSize(values['cold-size']) ?? 200 * 2 ** 20
/** Downloads per concurrency level for the warm runs (each downloads the whole blob). */
const WARM_RUNS: readonly [number, number][] = [
  [1, 3],
  [8, 8],
  [32, 32],
]
const COLD_CLIENTS = 50

/** A server under test: where it answers, its process, and how to start it again on the same store. */
interface Server {
  readonly url: string
  readonly pid: number | undefined
  stop(): Promise<void>
}

/** storage.verifyOnRead, by the name the tables give it. */
const VERIFY_MODES = { off: false, changed: 'changed', on: true } as const
type Key = keyof typeof VERIFY_MODES | 'distribution'

/**
 * Issue #13's targets for what this bench measures. A cold GET: at most 2.5x
 * the direct one on loopback, 1.05x behind a WAN-rate upstream, and faster
 * than Distribution's proxy (a row of its own at the end). Warm: nginx
 * measured right before, at the same concurrency.
 */
const COLD_TARGET = UPSTREAM_RATE === undefined ? 2.5 : 1.05
const FIFTY_TARGET = 2
const WARM_TARGETS: Partial<Record<Key, Readonly<Record<number, number>>>> = {
  on: { 1: 0.8, 8: 0.8, 32: 0.6 },
  changed: { 1: 0.95, 8: 0.95 },
}
/** Peak RSS during the warm runs, default verifyOnRead (32 concurrent downloads among them). */
const PEAK_RSS_TARGET_MB = 200

const work = await mkdtemp(join(tmpdir(), 'pt-bench-'))
// nginx workers run as an unprivileged user when started by root: they must read the files.
await chmod(work, 0o755)
const files = join(work, 'files')

/** Writes `size` random bytes as the blob of repository `name`; resolves with its digest. */
async function makeBlob(name: string, size: number): Promise<string> {
  const dir = join(files, 'v2', name, 'blobs')
  await mkdir(dir, { recursive: true })
  const temp = join(dir, 'partial')
  const out = createWriteStream(temp)
  const hash = createHash('sha256')
  const chunk = 4 * 2 ** 20
  for (let written = 0; written < size; written += chunk) {
    const data = randomBytes(Math.min(chunk, size - written))
    hash.update(data)
    if (!out.write(data)) await once(out, 'drain')
  }
  out.end()
  await once(out, 'finish')
  const digest = `sha256:${hash.digest('hex')}`
  await rename(temp, join(dir, digest))
  return digest
}

/** CPU seconds of a set of processes (nginx: its workers). */
async function cpuOf(pids: readonly (number | undefined)[]): Promise<number> {
  let total = 0
  for (const pid of pids) total += await cpuSeconds(pid)
  return total
}

function nginxWorkers(nginx: Nginx): number[] {
  const out = execFileSync('pgrep', ['-P', String(nginx.pid)], { encoding: 'utf8' })
  return out.split('\n').filter(Boolean).map(Number)
}

function getCount(log: string, name: string): number {
  return log.split('\n').filter((line) => line.includes(`"GET /v2/${name}/`)).length
}

const blobUrl = (base: string, name: string, digest: string) => `${base}/v2/${name}/blobs/${digest}`

let nginx: Nginx | undefined
const running: Server[] = []
try {
  say(`# pullthrough blob benchmark, ${new Date().toISOString()}`)
  say(machineLine())
  say(
    `nginx ${toolVersion('/usr/sbin/nginx', ['-v'])}, docker-registry ${toolVersion('docker-registry', ['--version'])}`,
  )
  say(
    `warm blob ${(WARM_BYTES / 2 ** 20).toFixed(0)} MiB, cold blobs ${(COLD_BYTES / 2 ** 20).toFixed(0)} MiB, upstream rate for cold blobs: ${UPSTREAM_RATE === undefined ? 'unlimited' : `${(UPSTREAM_RATE / 1e6).toFixed(0)} MB/s per connection`}`,
  )
  const warm = await makeBlob('warm', WARM_BYTES)
  const keys = [...Object.keys(VERIFY_MODES), 'distribution']
  const cold = new Map<string, string>()
  for (const key of keys)
    for (const kind of ['cold-single', 'cold-50'])
      cold.set(`${kind}-${key}`, await makeBlob(`${kind}-${key}`, COLD_BYTES))
  nginx = await startNginx({
    http: `  sendfile on;
  tcp_nopush on;
  keepalive_timeout 30;
  default_type application/octet-stream;`,
    server: `    root ${files};
    location = /v2/ { default_type application/json; return 200 '{}'; }
    location /v2/cold { limit_rate ${UPSTREAM_RATE ?? 0}; }`,
  })
  const upstream = nginx.url

  // nginx's warm runs go right before each server's, at the same concurrency: on this shared
  // machine nginx alone moves by 30% over minutes, so a ratio compares neighbours in time.
  const workers = nginxWorkers(nginx)
  const nginxWarm = { cpu: 0, bytes: 0 }
  const nginxLoad = async (concurrency: number, downloads: number) => {
    const cpuBefore = await cpuOf(workers)
    const result = await load(blobUrl(upstream, 'warm', warm), concurrency, downloads, WARM_BYTES)
    nginxWarm.cpu += (await cpuOf(workers)) - cpuBefore
    nginxWarm.bytes += result.bytes
    return result
  }

  /** The CPU seconds per GB `label` spent serving `bytes` warm, beside nginx's over its warm runs so far. */
  const cpuRow = (label: string, cpu: number, bytes: number) => {
    const perGb = cpu / (bytes / 1e9)
    const nginxPerGb = nginxWarm.cpu / (nginxWarm.bytes / 1e9)
    row([
      `CPU seconds per GB served warm, ${label}`,
      nginxPerGb.toFixed(2),
      perGb.toFixed(2),
      `${(perGb / nginxPerGb).toFixed(1)}x`,
      'reported',
      '-',
    ])
  }

  const starters: [Key, () => Promise<Server>][] = [
    ...(Object.entries(VERIFY_MODES) as [keyof typeof VERIFY_MODES, boolean | 'changed'][]).map(
      ([mode, verify]): [Key, () => Promise<Server>] => {
        const storage = join(work, `store-${mode}`)
        return [
          mode,
          async () => {
            const pt = await startPullthrough({
              dir: work,
              storage,
              verifyOnRead: verify,
              sections: `docker: { registries: [{ name: bench, default: true, upstreams: [{ url: "${upstream}" }] }] }\npypi: { indexes: [] }\n`,
            })
            return { url: pt.url, pid: pt.child.pid, stop: () => stop(pt.child) }
          },
        ]
      },
    ),
    [
      'distribution',
      async () => {
        const proxy = await startDistributionProxy(join(work, 'distribution'), upstream)
        return { url: proxy.url, pid: proxy.child.pid, stop: () => proxy.stop() }
      },
    ],
  ]

  say('')
  row(['measurement', 'nginx', 'server', 'ratio', 'target', 'met'])
  row(['---', '---', '---', '---', '---', '---'])
  /** Each server's single cold GET, for the comparison with Distribution at the end. */
  const coldSeconds = new Map<Key, number>()
  for (const [key, start] of starters) {
    const label = key === 'distribution' ? 'Distribution proxy' : `pullthrough, verifyOnRead ${key}`
    const server = await start()
    running.push(server)
    const single = `cold-single-${key}`
    const direct = await load(blobUrl(upstream, single, cold.get(single) ?? ''), 1, 1, COLD_BYTES)
    const through = await load(
      blobUrl(server.url, single, cold.get(single) ?? ''),
      1,
      1,
      COLD_BYTES,
    )
    coldSeconds.set(key, through.seconds)
    const coldRatio = through.seconds / direct.seconds
    const pullthrough = key !== 'distribution'
    row([
      `cold GET ${(COLD_BYTES / 2 ** 20).toFixed(0)} MiB, ${label} (s)`,
      `${direct.seconds.toFixed(2)} (direct)`,
      through.seconds.toFixed(2),
      `${coldRatio.toFixed(2)}x`,
      pullthrough ? `<= ${COLD_TARGET}x` : '-',
      pullthrough ? verdict(coldRatio <= COLD_TARGET) : '-',
    ])
    const fifty = `cold-50-${key}`
    const concurrent = await load(
      blobUrl(server.url, fifty, cold.get(fifty) ?? ''),
      COLD_CLIENTS,
      COLD_CLIENTS,
      COLD_BYTES,
    )
    const upstreamGets = getCount(await readFile(nginx.accessLog, 'utf8'), fifty)
    const fiftyRatio = concurrent.seconds / through.seconds
    row([
      `${COLD_CLIENTS} concurrent cold GETs, ${label}: upstream GETs / total s`,
      '-',
      `${upstreamGets} / ${concurrent.seconds.toFixed(2)}`,
      `${fiftyRatio.toFixed(2)}x one cold GET`,
      pullthrough ? `1 GET, <= ${FIFTY_TARGET}x` : '-',
      pullthrough ? `${verdict(upstreamGets === 1)} / ${verdict(fiftyRatio <= FIFTY_TARGET)}` : '-',
    ])
    // Fill the warm blob, then measure in a fresh process: its CPU and peak RSS are the warm runs' alone.
    await load(blobUrl(server.url, 'warm', warm), 1, 1, WARM_BYTES)
    await server.stop()
    const fresh = await start()
    running.push(fresh)
    // Start-up (pullthrough's loader and boot rehearsal) peaks on its own: the target is the downloads'.
    const startupPeak = await peakRssMb(fresh.pid)
    const peakReset = await resetPeakRss(fresh.pid)
    // The first GET of a fresh process, on its own: what a client meets right after a restart.
    const nginxFirst = await nginxLoad(1, 1)
    let cpuBefore = await cpuSeconds(fresh.pid)
    const first = await load(blobUrl(fresh.url, 'warm', warm), 1, 1, WARM_BYTES)
    let cpuSpent = (await cpuSeconds(fresh.pid)) - cpuBefore
    let served = first.bytes
    row([
      `first warm GET after a restart, ${label} (MB/s)`,
      nginxFirst.mbps.toFixed(0),
      first.mbps.toFixed(0),
      `${(first.mbps / nginxFirst.mbps).toFixed(2)}x`,
      '-',
      '-',
    ])
    for (const [concurrency, downloads] of WARM_RUNS) {
      const base = await nginxLoad(concurrency, downloads)
      cpuBefore = await cpuSeconds(fresh.pid)
      const result = await load(
        blobUrl(fresh.url, 'warm', warm),
        concurrency,
        downloads,
        WARM_BYTES,
      )
      cpuSpent += (await cpuSeconds(fresh.pid)) - cpuBefore
      served += result.bytes
      const ratio = result.mbps / base.mbps
      const target = WARM_TARGETS[key]?.[concurrency]
      row([
        `warm GET c=${concurrency}, ${label} (MB/s)`,
        base.mbps.toFixed(0),
        result.mbps.toFixed(0),
        `${ratio.toFixed(2)}x`,
        target === undefined ? '-' : `>= ${target}x`,
        target === undefined ? '-' : verdict(ratio >= target),
      ])
    }
    cpuRow(label, cpuSpent, served)
    row([`peak RSS while starting, ${label} (MB)`, '-', startupPeak.toFixed(0), '-', '-', '-'])
    const peak = await peakRssMb(fresh.pid)
    row([
      `peak RSS during the warm runs${peakReset ? '' : ' (and the start)'}, ${label} (MB)`,
      '-',
      peak.toFixed(0),
      '-',
      key === 'on' ? `<= ${PEAK_RSS_TARGET_MB}` : '-',
      key === 'on' ? verdict(peak <= PEAK_RSS_TARGET_MB) : '-',
    ])
    await fresh.stop()
  }
  // Node's own ceiling for the same warm file: bare node:http reading it in pullthrough's read size,
  // with nothing hashed, routed or counted (bench/bare-server.ts `file`). verifyOnRead off, and
  // changed once a file is verified, send by the same kind of reads; nginx sends with sendfile.
  const bare = await startBareServer('file', join(files, 'v2', 'warm', 'blobs', warm))
  running.push({ url: bare.url, pid: bare.child.pid, stop: () => stop(bare.child) })
  const label = 'bare node:http, the file in 512 KiB reads, no hash'
  let bareCpu = 0
  let bareBytes = 0
  for (const [concurrency, downloads] of WARM_RUNS) {
    const base = await nginxLoad(concurrency, downloads)
    const cpuBefore = await cpuSeconds(bare.child.pid)
    const result = await load(`${bare.url}/warm`, concurrency, downloads, WARM_BYTES)
    bareCpu += (await cpuSeconds(bare.child.pid)) - cpuBefore
    bareBytes += result.bytes
    row([
      `warm GET c=${concurrency}, ${label} (MB/s)`,
      base.mbps.toFixed(0),
      result.mbps.toFixed(0),
      `${(result.mbps / base.mbps).toFixed(2)}x`,
      '-',
      '-',
    ])
  }
  cpuRow(label, bareCpu, bareBytes)
  await stop(bare.child)
  // Faster than Distribution's proxy: each mode's cold GET against Distribution's, in this run.
  const distribution = coldSeconds.get('distribution')
  if (distribution !== undefined)
    for (const mode of Object.keys(VERIFY_MODES) as (keyof typeof VERIFY_MODES)[]) {
      const seconds = coldSeconds.get(mode)
      if (seconds === undefined) continue
      row([
        `cold GET ${(COLD_BYTES / 2 ** 20).toFixed(0)} MiB, pullthrough, verifyOnRead ${mode}, against Distribution proxy (s)`,
        '-',
        `${seconds.toFixed(2)} / ${distribution.toFixed(2)}`,
        `${(seconds / distribution).toFixed(2)}x`,
        '< 1.0x',
        verdict(seconds < distribution),
      ])
    }
} finally {
  for (const server of running) await server.stop().catch(() => undefined)
  await nginx?.stop()
  await rm(work, { recursive: true, force: true })
}
