/**
 * Blob serving benchmark. In one run, on loopback:
 *   - nginx serves the files statically (the baseline, and the upstream);
 *   - pullthrough (bench/blob-server.ts) serves them through the read-through cache.
 * Prints warm throughput at concurrency 1/8/32 with verifyOnRead off, changed and on as a
 * ratio to nginx, cold fill time as a ratio to fetching from the upstream
 * directly, 50 concurrent cold GETs (upstream GET count, total time), and the
 * peak RSS of the pullthrough process. Bounded: every load is a fixed number
 * of downloads. Usage: npm run bench [-- --warm-size 1GiB --cold-size 200MiB]
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { createWriteStream } from 'node:fs'
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { cpus, tmpdir, totalmem } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { parseArgs } from 'node:util'
import { parseSize } from '../src/config/units.ts'
import { startNginx, type Nginx } from './nginx.ts'

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
const START_TIMEOUT_MS = 30_000

const work = await mkdtemp(join(tmpdir(), 'pt-bench-'))
// nginx workers run as an unprivileged user when started by root: they must read the files.
await chmod(work, 0o755)
const children: ChildProcess[] = []
process.on('exit', () => {
  for (const child of children) child.kill('SIGKILL')
})

async function makeBlob(name: string, size: number): Promise<string> {
  const out = createWriteStream(join(work, 'files', name))
  const hash = createHash('sha256')
  const chunk = 4 * 2 ** 20
  for (let written = 0; written < size; written += chunk) {
    const data = randomBytes(Math.min(chunk, size - written))
    hash.update(data)
    if (!out.write(data)) await once(out, 'drain')
  }
  out.end()
  await once(out, 'finish')
  return `sha256:${hash.digest('hex')}`
}

interface Pullthrough {
  readonly url: string
  readonly child: ChildProcess
}

/** storage.verifyOnRead, by the name the tables give it. */
const VERIFY_MODES = { off: false, changed: 'changed', on: true } as const
type VerifyOnRead = (typeof VERIFY_MODES)[keyof typeof VERIFY_MODES]

async function startPullthrough(
  upstream: string,
  verifyOnRead: VerifyOnRead,
  storage: string,
): Promise<Pullthrough> {
  const config = join(work, `pt-${String(verifyOnRead)}.yaml`)
  await writeFile(
    config,
    `storage: { path: "${storage}", verifyOnRead: ${String(verifyOnRead)}, maxSize: 100GiB }
log: { level: warn }
docker: { registries: [{ name: bench, default: true, upstreams: [{ url: "${upstream}" }] }] }
pypi: { indexes: [] }
`,
  )
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', join(import.meta.dirname, 'blob-server.ts')],
    {
      env: {
        ...process.env,
        PULLTHROUGH_CONFIG: config,
        PULLTHROUGH_HOST: '127.0.0.1',
        PULLTHROUGH_PORT: '0',
        PULLTHROUGH_LOG_LEVEL: 'info',
      },
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  )
  children.push(child)
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('pullthrough did not start')), START_TIMEOUT_MS)
    createInterface({ input: child.stdout }).on('line', (line) => {
      const entry = JSON.parse(line) as { msg?: string; url?: string }
      if (entry.msg === 'listening' && entry.url) {
        clearTimeout(timer)
        resolve(entry.url)
      }
    })
  })
  return { url, child }
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return
  child.kill('SIGTERM')
  await once(child, 'exit')
}

/** Runs `downloads` curl downloads of `url`, `concurrency` at a time; returns MB/s over the wall time. */
async function load(
  url: string,
  concurrency: number,
  downloads: number,
  expectBytes: number,
): Promise<{ mbps: number; seconds: number }> {
  let next = 0
  let bytes = 0
  const started = process.hrtime.bigint()
  const worker = async () => {
    while (next < downloads) {
      next++
      const child = spawn('curl', [
        '-s',
        '-o',
        '/dev/null',
        '-w',
        '%{size_download} %{http_code}',
        url,
      ])
      let out = ''
      child.stdout.on('data', (d: Buffer) => (out += d.toString()))
      // 'close', not 'exit': stdout may still hold the -w line when the process exits.
      await once(child, 'close')
      const [size, status] = out.split(' ')
      if (status !== '200' || Number(size) !== expectBytes)
        throw new Error(`bad download of ${url}: ${out}`)
      bytes += Number(size)
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker))
  const seconds = Number(process.hrtime.bigint() - started) / 1e9
  return { mbps: bytes / 1e6 / seconds, seconds }
}

async function peakRssMb(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8')
  const kb = Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? 0)
  return kb / 1024
}

function accessCount(log: string, path: string): number {
  return log.split('\n').filter((line) => line.includes(`"GET /${path} `)).length
}

const lines: string[] = []
const say = (line: string) => {
  lines.push(line)
  process.stdout.write(`${line}\n`)
}

let nginxServer: Nginx | undefined
try {
  await rm(join(work, 'files'), { recursive: true, force: true })
  const { mkdir } = await import('node:fs/promises')
  await mkdir(join(work, 'files'), { recursive: true })
  say(`# pullthrough blob benchmark, ${new Date().toISOString()}`)
  say(
    `machine: ${cpus().length} cores (${cpus()[0]?.model ?? 'unknown'}), ${(totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}`,
  )
  say(
    `warm blob ${(WARM_BYTES / 2 ** 20).toFixed(0)} MiB, cold blobs ${(COLD_BYTES / 2 ** 20).toFixed(0)} MiB`,
  )
  const rate =
    UPSTREAM_RATE === undefined
      ? 'unlimited'
      : `${(UPSTREAM_RATE / 1e6).toFixed(0)} MB/s per connection`
  say(`upstream rate for cold blobs: ${rate}`)
  const warm = await makeBlob('warm', WARM_BYTES)
  const coldNames = Object.keys(VERIFY_MODES).flatMap((m) => [`cold-single-${m}`, `cold-50-${m}`])
  const cold = Object.fromEntries(
    await Promise.all(coldNames.map(async (n) => [n, await makeBlob(n, COLD_BYTES)] as const)),
  )
  nginxServer = await startNginx({
    http: `  sendfile on;
  tcp_nopush on;
  keepalive_timeout 30;`,
    server: `    root ${work}/files;
    location /cold { limit_rate ${UPSTREAM_RATE ?? 0}; }`,
  })
  const nginx = nginxServer.url

  const baseline = new Map<number, number>()
  for (const [concurrency, downloads] of WARM_RUNS) {
    baseline.set(
      concurrency,
      (await load(`${nginx}/warm`, concurrency, downloads, WARM_BYTES)).mbps,
    )
  }
  say('')
  say('| measurement | nginx | pullthrough | ratio |')
  say('|---|---|---|---|')
  for (const [mode, verify] of Object.entries(VERIFY_MODES)) {
    const pt = await startPullthrough(nginx, verify, join(work, `store-${mode}`))
    // Cold single GET against the upstream directly, then through pullthrough.
    const direct = await load(`${nginx}/cold-single-${mode}`, 1, 1, COLD_BYTES)
    const through = await load(
      `${pt.url}/bench/cold-single-${mode}/${cold[`cold-single-${mode}`] ?? ''}`,
      1,
      1,
      COLD_BYTES,
    )
    say(
      `| cold GET ${(COLD_BYTES / 2 ** 20).toFixed(0)} MiB, verifyOnRead ${mode} (s) | ${direct.seconds.toFixed(2)} (direct) | ${through.seconds.toFixed(2)} | ${(through.seconds / direct.seconds).toFixed(2)}x |`,
    )
    // 50 concurrent cold GETs of one blob.
    const concurrent = await load(
      `${pt.url}/bench/cold-50-${mode}/${cold[`cold-50-${mode}`] ?? ''}`,
      COLD_CLIENTS,
      COLD_CLIENTS,
      COLD_BYTES,
    )
    const upstreamGets = accessCount(
      await readFile(nginxServer.accessLog, 'utf8'),
      `cold-50-${mode}`,
    )
    say(
      `| ${COLD_CLIENTS} concurrent cold GETs, verifyOnRead ${mode}: upstream GETs / total s | - | ${upstreamGets} / ${concurrent.seconds.toFixed(2)} | ${(concurrent.seconds / through.seconds).toFixed(2)}x one cold GET |`,
    )
    // Fill the warm blob, then measure in a fresh process so its peak RSS is the warm runs' alone.
    await load(`${pt.url}/bench/warm/${warm}`, 1, 1, WARM_BYTES)
    await stop(pt.child)
    const warmPt = await startPullthrough(nginx, verify, join(work, `store-${mode}`))
    for (const [concurrency, downloads] of WARM_RUNS) {
      const result = await load(
        `${warmPt.url}/bench/warm/${warm}`,
        concurrency,
        downloads,
        WARM_BYTES,
      )
      const base = baseline.get(concurrency) ?? 1
      say(
        `| warm GET c=${concurrency}, verifyOnRead ${mode} (MB/s) | ${base.toFixed(0)} | ${result.mbps.toFixed(0)} | ${(result.mbps / base).toFixed(2)}x |`,
      )
    }
    say(
      `| peak RSS of pullthrough during the warm runs, verifyOnRead ${mode} (MB) | - | ${(await peakRssMb(warmPt.child.pid ?? 0)).toFixed(0)} | - |`,
    )
    await stop(warmPt.child)
  }
} finally {
  await nginxServer?.stop()
  for (const child of children) child.kill('SIGTERM')
  await rm(work, { recursive: true, force: true })
}
