/**
 * What the benchmarks that run pullthrough as its own process share: starting
 * the real CLI (`pullthrough serve`, the built bin) with a temp config and stopping it by PID,
 * its upstream request count from /metrics, CPU seconds of a process, option
 * parsing, and the printed report (machine line, tool versions, markdown rows,
 * medians with each run).
 */
import { execFile, execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { readFile, writeFile } from 'node:fs/promises'
import { cpus, totalmem } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { parseSize } from '../src/config/units.ts'
import { freePort } from '../test/helpers/free-port.ts'
import type { Teardowns } from './teardowns.ts'

/** Resolved here, so the child finds tsx whatever its working directory. */
const TSX = import.meta.resolve('tsx')
const ROOT = join(import.meta.dirname, '..')
/** The `pullthrough` bin a user runs (package.json `bin`), built from this checkout. */
const BUILT_CLI = join(ROOT, 'dist', 'cli.js')
let building: Promise<void> | undefined
const execFileAsync = promisify(execFile)

/** Builds dist/ from this checkout's sources, once per benchmark. */
function buildCli(): Promise<void> {
  building ??= execFileAsync('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: ROOT }).then(
    () => undefined,
  )
  return building
}
const START_TIMEOUT_MS = 30_000
const START_POLL_MS = 50
const STOP_TIMEOUT_MS = 10_000
const HTTP_TIMEOUT_MS = 10_000
/** How much of pullthrough's output is kept for error messages. */
const LOG_TAIL_CHARS = 8192

/** What containerd (and so dockerd) sends when it resolves a tag: every manifest type. */
export const DOCKER_ACCEPT = [
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.oci.image.index.v1+json',
  '*/*',
].join(', ')

export const say = (line: string) => process.stdout.write(`${line}\n`)

/** One markdown table row. */
export const row = (cells: readonly (string | number)[]) => say(`| ${cells.join(' | ')} |`)

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1
    ? (sorted[mid] ?? NaN)
    : ((sorted[mid - 1] ?? NaN) + (sorted[mid] ?? NaN)) / 2
}

/** `median (run 1, run 2, ...)`, in seconds with two decimals. */
export const seconds = (values: readonly number[]) =>
  `${median(values).toFixed(2)} (${values.map((v) => v.toFixed(2)).join(', ')})`

export const verdict = (met: boolean) => (met ? 'yes' : '**no**')

export function positiveInt(name: string, text: string): number {
  const n = Number(text)
  if (!Number.isSafeInteger(n) || n < 1) throw new Error(`--${name} must be a positive integer`)
  return n
}

export function oneOf<T extends string>(name: string, text: string, allowed: readonly T[]): T {
  const found = allowed.find((value) => value === text)
  if (found === undefined) throw new Error(`--${name} must be one of ${allowed.join(', ')}`)
  return found
}

/** `--verify-on-read on|off|changed`: the mode's name and the `storage.verifyOnRead` value it stands for. */
export function verifyOnReadFlag(text: string): {
  mode: 'on' | 'off' | 'changed'
  value: boolean | 'changed'
} {
  const mode = oneOf('verify-on-read', text, ['on', 'off', 'changed'])
  return { mode, value: mode === 'changed' ? 'changed' : mode === 'on' }
}

/** `--upstream-rate` in bytes per second; undefined when not given. */
export function upstreamRate(text: string | undefined): number | undefined {
  if (text === undefined) return undefined
  const rate = parseSize(text)
  if (rate === undefined || rate === 0)
    throw new Error('--upstream-rate must be a size per second above 0, e.g. 100MB')
  return rate
}

/** `machine: 2 cores (model), 24 GiB, node v20...`. */
export function machineLine(): string {
  return `machine: ${cpus().length} cores (${cpus()[0]?.model ?? 'unknown'}), ${(totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}`
}

/** The version number `command args` prints, e.g. `1.9.3`. */
export function toolVersion(command: string, args: string[]): string {
  // wrk prints its version with the usage text and exits 1; nginx -v prints it on stderr.
  const run = spawnSync(command, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
  return /\d+\.\d+(\.\d+)?\S*/.exec(`${run.stdout}${run.stderr}`)?.[0] ?? 'unknown'
}

/** Clock ticks per second of /proc/<pid>/stat's CPU times. */
const CLOCK_TICKS = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100

/**
 * CPU seconds the whole machine spent busy so far, all cores together (every
 * field of /proc/stat's `cpu` line but idle and iowait; proc(5)). Around a
 * run, divided by its wall time: how many cores were busy.
 */
export async function machineBusySeconds(): Promise<number> {
  const [line] = (await readFile('/proc/stat', 'utf8')).split('\n')
  const ticks = (line ?? '').trim().split(/\s+/).slice(1).map(Number)
  // user nice system idle iowait irq softirq steal
  const busy = [0, 1, 2, 5, 6, 7].reduce((sum, field) => sum + (ticks[field] ?? 0), 0)
  return busy / CLOCK_TICKS
}

/** User + system CPU seconds a process (all its threads) has used so far; NaN if unreadable. */
export async function cpuSeconds(pid: number | undefined): Promise<number> {
  if (pid === undefined) return NaN
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '')
  // Fields after the parenthesised command name; utime and stime are fields 14 and 15 (proc(5)).
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS
}

export interface Pullthrough {
  /** `http://127.0.0.1:PORT` */
  readonly url: string
  /** `127.0.0.1:PORT` */
  readonly host: string
  readonly child: ChildProcess
}

export interface PullthroughOptions {
  /** Where the config file is written. */
  readonly dir: string
  /** storage.path: a fresh directory gives an empty store. */
  readonly storage: string
  readonly verifyOnRead: boolean | 'changed'
  /** The `docker:` and `pypi:` sections of the config, as YAML. */
  readonly sections: string
  /** The node binary to run it with; default the one running the benchmark. */
  readonly node?: string
  /** Node options before the script (`--cpu-prof`, `--import` of a probe). */
  readonly nodeArgs?: readonly string[]
  /**
   * The checkout whose `src/cli.ts` runs through tsx (to compare commits);
   * default this one's built bin, dist/cli.js, as a user runs it.
   */
  readonly checkout?: string
}

/**
 * Node's flags as `npm start`, the container image and the `pullthrough` bin
 * run the server (test/deploy/node-flags.test.ts keeps them the same).
 */
export const SERVE_NODE_FLAGS = ['--max-semi-space-size=16']

/** Every pullthrough started and not stopped yet: SIGKILLed if this process exits first. */
const children = new Set<ChildProcess>()
process.on('exit', () => {
  for (const child of children) child.kill('SIGKILL')
})

/**
 * Starts `pullthrough serve` (see PullthroughOptions.checkout) on a free 127.0.0.1 port with log level warn and
 * `options`; resolves when /healthz answers. Its environment has no PULLTHROUGH_*
 * variables, so only the config file counts.
 */
export async function startPullthrough(options: PullthroughOptions): Promise<Pullthrough> {
  const port = await freePort()
  const config = join(options.dir, `pullthrough-${port}.yaml`)
  await writeFile(
    config,
    `server: { host: 127.0.0.1, port: ${port} }
storage: { path: "${options.storage}", verifyOnRead: ${String(options.verifyOnRead)}, maxSize: 100GiB }
log: { level: warn }
${options.sections}`,
  )
  const env: NodeJS.ProcessEnv = {}
  for (const [key, value] of Object.entries(process.env))
    if (!key.startsWith('PULLTHROUGH_')) env[key] = value
  const node = options.node ?? process.execPath
  if (options.checkout === undefined) await buildCli()
  const cli =
    options.checkout === undefined
      ? [BUILT_CLI]
      : ['--import', TSX, join(options.checkout, 'src', 'cli.ts')]
  const args = [...SERVE_NODE_FLAGS, ...(options.nodeArgs ?? []), ...cli, 'serve', '-c', config]
  const child = spawn(node, args, {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  children.add(child)
  let tail = ''
  const keep = (d: Buffer) => (tail = (tail + d.toString()).slice(-LOG_TAIL_CHARS))
  child.stdout.on('data', keep)
  child.stderr.on('data', keep)
  const url = `http://127.0.0.1:${port}`
  const deadline = Date.now() + START_TIMEOUT_MS
  for (;;) {
    if (child.exitCode !== null) throw new Error(`pullthrough exited: ${tail}`)
    if (Date.now() >= deadline) throw new Error(`pullthrough did not start: ${tail}`)
    const status = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(HTTP_TIMEOUT_MS) })
      .then(async (res) => {
        await res.arrayBuffer()
        return res.status
      })
      .catch(() => 0)
    if (status === 200) break
    await new Promise((resolve) => setTimeout(resolve, START_POLL_MS))
  }
  return { url, host: `127.0.0.1:${port}`, child }
}

/**
 * bench/bare-server.ts in a process of its own on a free port, answering
 * every GET with `bodyFile` (see there for the kinds); the caller stops it.
 */
export async function startBareServer(
  kind: 'fastify' | 'http' | 'file',
  bodyFile: string,
): Promise<{ url: string; child: ChildProcess }> {
  const port = await freePort()
  const child = spawn(
    process.execPath,
    ['--import', TSX, join(import.meta.dirname, 'bare-server.ts'), kind, bodyFile, String(port)],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  )
  children.add(child)
  try {
    const [line] = (await Promise.race([
      once(child.stdout, 'data'),
      once(child, 'exit').then(() => {
        throw new Error(`bare ${kind} server exited before listening`)
      }),
    ])) as [Buffer]
    if (!line.toString().includes('listening'))
      throw new Error(`bare ${kind} server: ${line.toString()}`)
  } catch (error) {
    await stop(child)
    throw error
  }
  return { url: `http://127.0.0.1:${port}`, child }
}

/** SIGTERM by PID, SIGKILL if it has not exited within STOP_TIMEOUT_MS. */
export async function stop(child: ChildProcess): Promise<void> {
  children.delete(child)
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = once(child, 'exit')
  child.kill('SIGTERM')
  const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS)
  await exited
  clearTimeout(timer)
}

/** Upstream requests pullthrough has made so far (every outcome), from its /metrics. */
export async function upstreamRequests(pt: Pullthrough): Promise<number> {
  const res = await fetch(`${pt.url}/metrics`, { signal: AbortSignal.timeout(HTTP_TIMEOUT_MS) })
  const text = await res.text()
  let total = 0
  for (const line of text.split('\n'))
    if (line.startsWith('pullthrough_upstream_request_duration_seconds_count'))
      total += Number(line.slice(line.lastIndexOf(' ') + 1))
  return total
}

/** Stops every pullthrough still running, then runs the teardowns; reports their errors. */
export async function cleanUp(teardowns: Teardowns): Promise<void> {
  await Promise.all([...children].map(stop))
  const errors = await teardowns.run()
  for (const error of errors) process.stderr.write(`cleanup: ${String(error)}\n`)
}

/** On SIGINT or SIGTERM: clean up, then exit 130. */
export function cleanUpOnSignals(teardowns: Teardowns): void {
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      void cleanUp(teardowns).finally(() => process.exit(130))
    })
  }
}

/** Runs `downloads` curl downloads of `url`, `concurrency` at a time; returns MB/s over the wall time. */
export async function load(
  url: string,
  concurrency: number,
  downloads: number,
  expectBytes: number,
): Promise<{ mbps: number; seconds: number; bytes: number }> {
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
  return { mbps: bytes / 1e6 / seconds, seconds, bytes }
}

/** Peak RSS in MB of process `pid` since resetPeakRss (or its start); NaN once it is gone. */
export async function peakRssMb(pid: number | undefined): Promise<number> {
  const status = await readFile(`/proc/${String(pid)}/status`, 'utf8').catch(() => '')
  return Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? NaN) / 1024
}

/** Resets the peak RSS of `pid` to its current RSS (proc(5), clear_refs 5); false where not allowed. */
export async function resetPeakRss(pid: number | undefined): Promise<boolean> {
  return writeFile(`/proc/${String(pid)}/clear_refs`, '5').then(
    () => true,
    () => false,
  )
}
