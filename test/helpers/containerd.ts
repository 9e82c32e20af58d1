/**
 * A real containerd with its own root, state and gRPC socket in a temp dir, for
 * tests that drive `ctr`; stopped by its PID at test end. Also the process
 * plumbing that dockerd.ts shares: run a command, wait for a daemon's log line,
 * stop a daemon by PID, unmount what a killed daemon left behind.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdir, mkdtemp, readFile, realpath, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Test } from 'tap'

/** How long containerd may take to log that it booted. */
const START_TIMEOUT_MS = 15_000
/** How long a daemon may take to exit after SIGTERM before it gets SIGKILL. */
const STOP_GRACE_MS = 10_000
/** How long a SIGKILLed process may take to be reaped. */
const KILL_WAIT_MS = 5_000
/** Default bound on one `ctr` run (a pull of a small image takes well under a second). */
const CTR_TIMEOUT_MS = 60_000
/** How long one `mount`/`umount` may take. */
const MOUNT_TIMEOUT_MS = 10_000
/** A daemon's output kept for error messages: the tail, so a chatty daemon cannot fill memory. */
const MAX_LOG_CHARS = 1_000_000
/** sockaddr_un.sun_path is 108 bytes including the terminating NUL. */
const MAX_SOCKET_PATH_BYTES = 107
/** containerd's ttrpc socket is the gRPC address plus this suffix. */
const TTRPC_SUFFIX = '.ttrpc'
/** The namespace `ctr` uses unless a call names another (dockerd uses "moby"). */
const DEFAULT_NAMESPACE = 'pullthrough-test'
/** containerd logs this at info level once every plugin is loaded and it serves gRPC. */
const BOOTED_LINE = 'containerd successfully booted'

export interface CommandResult {
  readonly stdout: string
  readonly stderr: string
  /** The exit code, or null when a signal ended the process. */
  readonly code: number | null
}

export interface CommandOptions {
  readonly timeoutMs?: number
  readonly env?: NodeJS.ProcessEnv
}

export interface CtrOptions {
  /** containerd namespace; DEFAULT_NAMESPACE unless given. */
  readonly namespace?: string
  readonly timeoutMs?: number
}

export type Snapshotter = 'overlayfs' | 'native'

export interface TestContainerd {
  /** Path of the gRPC unix socket (what `ctr --address` and `dockerd --containerd` take). */
  readonly address: string
  /** The snapshotter `ctr` unpacks into: overlayfs where it mounts here, else native. */
  readonly snapshotter: Snapshotter
  /** Runs `ctr --address ADDR --namespace NS ...args`; resolves whatever the exit code. */
  ctr(args: readonly string[], options?: CtrOptions): Promise<CommandResult>
  /** What containerd has logged so far (the tail). */
  logs(): string
}

/** A containerd whose caller owns its lifetime (dockerd.ts stops it after dockerd). */
export interface RunningContainerd extends TestContainerd {
  stop(): Promise<void>
}

export interface ContainerdOptions {
  /** Skip the overlay probe and use this snapshotter. */
  readonly snapshotter?: Snapshotter
}

/** Runs a command to completion, killing it (by PID) if it outlives the bound. */
export async function runCommand(
  command: string,
  args: readonly string[],
  options: CommandOptions = {},
): Promise<CommandResult> {
  const timeoutMs = options.timeoutMs ?? CTR_TIMEOUT_MS
  const child = spawn(command, args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: options.env ?? process.env,
  })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
  // An object, so the type checker sees that the timer callback can change it.
  const deadline = { passed: false }
  const timer = setTimeout(() => {
    deadline.passed = true
    child.kill('SIGKILL')
  }, timeoutMs)
  try {
    // 'close' (not 'exit') so both pipes are drained; 'error' when it cannot be spawned.
    const [code] = (await once(child, 'close')) as [number | null]
    if (deadline.passed) {
      throw new Error(`${command} ${args.join(' ')} timed out after ${timeoutMs} ms: ${stderr}`)
    }
    return { stdout, stderr, code }
  } finally {
    clearTimeout(timer)
  }
}

/** Keeps the tail of a daemon's stdout and stderr. */
export function captureOutput(child: ChildProcess): () => string {
  let text = ''
  const append = (d: Buffer) => {
    text += d.toString()
    if (text.length > MAX_LOG_CHARS) text = text.slice(-MAX_LOG_CHARS)
  }
  child.stdout?.on('data', append)
  child.stderr?.on('data', append)
  return () => text
}

/**
 * Resolves once the daemon has logged `needle`; rejects, with its log, if it
 * exits, cannot be spawned, or stays silent past the bound.
 */
export async function waitForLogLine(
  child: ChildProcess,
  logs: () => string,
  needle: string,
  timeoutMs: number,
): Promise<void> {
  const name = child.spawnfile
  await new Promise<void>((resolve, reject) => {
    const done = (error?: Error) => {
      clearTimeout(timer)
      child.stdout?.off('data', check)
      child.stderr?.off('data', check)
      child.off('exit', onExit)
      child.off('error', done)
      if (error) reject(error)
      else resolve()
    }
    // captureOutput's listener was added first, so logs() already holds this chunk.
    const check = () => {
      if (logs().includes(needle)) done()
    }
    const onExit = (code: number | null, signal: NodeJS.Signals | null) =>
      done(new Error(`${name} exited (${String(code ?? signal)}) before ready:\n${logs()}`))
    const timer = setTimeout(
      () => done(new Error(`${name} not ready after ${timeoutMs} ms:\n${logs()}`)),
      timeoutMs,
    )
    child.stdout?.on('data', check)
    child.stderr?.on('data', check)
    child.once('exit', onExit)
    child.once('error', done)
    check()
  })
}

async function exitsWithin(exited: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)))
  try {
    return await Promise.race([exited.then(() => true), timeout])
  } finally {
    clearTimeout(timer)
  }
}

/** SIGTERM to this child's PID, then SIGKILL if it has not exited within `graceMs`. */
export async function stopProcess(child: ChildProcess, graceMs = STOP_GRACE_MS): Promise<void> {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return
  const exited = once(child, 'exit')
  child.kill('SIGTERM')
  if (await exitsWithin(exited, graceMs)) return
  child.kill('SIGKILL')
  if (!(await exitsWithin(exited, KILL_WAIT_MS))) {
    throw new Error(`${child.spawnfile} (pid ${child.pid}) still running after SIGKILL`)
  }
}

/** /proc/self/mountinfo escapes space, tab, newline and backslash as octal. */
function unescapeMountPath(path: string): string {
  return path.replace(/\\([0-7]{3})/g, (_, octal: string) =>
    String.fromCharCode(parseInt(octal, 8)),
  )
}

async function mountPointsUnder(dir: string): Promise<string[]> {
  const info = await readFile('/proc/self/mountinfo', 'utf8')
  const points: string[] = []
  for (const line of info.split('\n')) {
    const field = line.split(' ')[4]
    if (field === undefined) continue
    const point = unescapeMountPath(field)
    if (point === dir || point.startsWith(`${dir}/`)) points.push(point)
  }
  // Deepest first: a parent cannot be unmounted while a child is mounted on it.
  return points.sort((a, b) => b.length - a.length)
}

/**
 * Unmounts everything at or below `dir`. A daemon that exits cleanly undoes its
 * own mounts (dockerd bind-mounts its data-root onto itself); one that was
 * SIGKILLed leaves them, and `rm -r` then fails with EBUSY.
 */
export async function unmountUnder(dir: string): Promise<void> {
  const root = await realpath(dir).catch(() => undefined)
  if (root === undefined) return
  // Stacked mounts on one point need one umount each; bound the passes.
  for (let pass = 0; pass < 10; pass++) {
    const points = await mountPointsUnder(root)
    if (points.length === 0) return
    for (const point of points) {
      const plain = await runCommand('umount', [point], { timeoutMs: MOUNT_TIMEOUT_MS })
      // Still busy (an open file, a process cwd): detach it so the directory can go.
      if (plain.code !== 0)
        await runCommand('umount', ['--lazy', point], { timeoutMs: MOUNT_TIMEOUT_MS })
    }
  }
  throw new Error(`mounts left under ${root}: ${(await mountPointsUnder(root)).join(', ')}`)
}

/** Runs every step even when one fails, then throws the failures together. */
async function runAll(steps: readonly (() => Promise<void>)[]): Promise<void> {
  const errors: unknown[] = []
  for (const step of steps) {
    try {
      await step()
    } catch (error) {
      errors.push(error)
    }
  }
  if (errors.length === 1) throw errors[0]
  if (errors.length > 1) throw new AggregateError(errors, 'cleanup failed')
}

/**
 * At test end, runs the stops added through the returned function (last added
 * first: dockerd before its containerd), then unmounts leftovers under `dir`
 * and removes it. One teardown, because tap skips the rest after one fails.
 */
export function cleanUpAtEnd(t: Test, dir: string): (stop: () => Promise<void>) => void {
  const stops: (() => Promise<void>)[] = []
  t.teardown(() =>
    runAll([
      ...stops.reverse(),
      () => unmountUnder(dir),
      () => rm(dir, { recursive: true, force: true }),
    ]),
  )
  return (stop) => {
    stops.push(stop)
  }
}

/** A temp dir; its real path, so socket lengths and mount points are what the kernel sees. */
export async function daemonDir(prefix: string): Promise<string> {
  return realpath(await mkdtemp(join(tmpdir(), prefix)))
}

/** Throws unless a unix socket at `path` fits in sockaddr_un. */
export function assertSocketPathFits(path: string): void {
  const bytes = Buffer.byteLength(path)
  if (bytes > MAX_SOCKET_PATH_BYTES) {
    throw new Error(
      `unix socket path ${path} is ${bytes} bytes, over ${MAX_SOCKET_PATH_BYTES}: use a shorter TMPDIR`,
    )
  }
}

/**
 * Whether an overlay mount works here. containerd 1.6's overlayfs plugin loads
 * wherever its root supports d_type, and a one-layer image unpacks through a
 * bind mount, so only an image's second layer would find out; try a mount now.
 */
async function overlayMounts(dir: string): Promise<boolean> {
  const probe = join(dir, 'overlay-probe')
  const [lower, upper, work, merged] = ['lower', 'upper', 'work', 'merged'].map((d) =>
    join(probe, d),
  ) as [string, string, string, string]
  await Promise.all([lower, upper, work, merged].map((d) => mkdir(d, { recursive: true })))
  const options = `lowerdir=${lower},upperdir=${upper},workdir=${work}`
  const mounted = await runCommand('mount', ['-t', 'overlay', 'overlay', '-o', options, merged], {
    timeoutMs: MOUNT_TIMEOUT_MS,
  })
  if (mounted.code === 0) await unmountUnder(merged)
  await rm(probe, { recursive: true, force: true })
  return mounted.code === 0
}

/** A TOML basic string: JSON's escapes are valid TOML for the paths and URLs written here. */
const toml = (value: string) => JSON.stringify(value)

function containerdConfig(dir: string, address: string): string {
  return `version = 2
root = ${toml(join(dir, 'root'))}
state = ${toml(join(dir, 'state'))}
# CRI is for kubelet; without it containerd boots in tens of milliseconds.
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = ${toml(address)}

[debug]
  # The boot line startContainerd waits for is logged at info.
  level = "info"

# Defaults to /opt/containerd, which it creates on the host.
[plugins."io.containerd.internal.v1.opt"]
  path = ${toml(join(dir, 'opt'))}
`
}

/**
 * Starts containerd in `dir` (which the caller removes) and waits until it
 * serves; the caller must call stop(). Stops it again if it never gets ready.
 */
export async function launchContainerd(
  dir: string,
  options: ContainerdOptions = {},
): Promise<RunningContainerd> {
  const address = join(dir, 'containerd.sock')
  assertSocketPathFits(address + TTRPC_SUFFIX)
  const config = join(dir, 'config.toml')
  await writeFile(config, containerdConfig(dir, address))
  const probed = options.snapshotter ?? ((await overlayMounts(dir)) ? 'overlayfs' : 'native')

  const child = spawn('containerd', ['--config', config], { stdio: ['ignore', 'pipe', 'pipe'] })
  const logs = captureOutput(child)
  const stop = () => stopProcess(child)
  let snapshotter: Snapshotter = probed
  const ctr = (args: readonly string[], ctrOptions: CtrOptions = {}) =>
    runCommand(
      'ctr',
      ['--address', address, '--namespace', ctrOptions.namespace ?? DEFAULT_NAMESPACE, ...args],
      {
        timeoutMs: ctrOptions.timeoutMs ?? CTR_TIMEOUT_MS,
        // ctr's default snapshotter for pull/unpack/run, so callers need not pass it.
        env: { ...process.env, CONTAINERD_SNAPSHOTTER: snapshotter },
      },
    )
  try {
    await waitForLogLine(child, logs, BOOTED_LINE, START_TIMEOUT_MS)
    if (snapshotter === 'overlayfs' && !(await pluginLoaded(ctr, 'overlayfs'))) {
      snapshotter = 'native'
    }
  } catch (error) {
    await stopProcess(child)
    throw error
  }
  return { address, snapshotter, ctr, logs, stop }
}

/** Whether `ctr plugins ls` lists the snapshotter plugin with status ok. */
async function pluginLoaded(ctr: TestContainerd['ctr'], id: string): Promise<boolean> {
  const { stdout, code } = await ctr(['plugins', 'ls'])
  if (code !== 0) return false
  return stdout
    .split('\n')
    .map((line) => line.trim().split(/\s+/))
    .some(
      ([type, name, , status]) =>
        type === 'io.containerd.snapshotter.v1' && name === id && status === 'ok',
    )
}

/** Starts a containerd for this test; stopped by PID, unmounted and removed at test end. */
export async function startContainerd(
  t: Test,
  options: ContainerdOptions = {},
): Promise<TestContainerd> {
  const dir = await daemonDir('pt-ctd-')
  const onEnd = cleanUpAtEnd(t, dir)
  const containerd = await launchContainerd(dir, options)
  onEnd(() => containerd.stop())
  return containerd
}

/**
 * Writes a containerd hosts dir in which `host` (e.g. "docker.io") is pulled
 * through `mirrors` (e.g. "http://127.0.0.1:PORT"), for
 * `ctr images pull --hosts-dir DIR host/repo:tag`. containerd adds `?ns=host`
 * to a mirror's requests, and still falls back to the host's own server.
 */
export async function writeHostsDir(
  t: Test,
  host: string,
  mirrors: readonly string[],
  /** Add to this hosts dir (another registry's file) instead of a new one. */
  into?: string,
): Promise<string> {
  let dir = into
  if (dir === undefined) {
    const created = await daemonDir('pt-hosts-')
    t.teardown(() => rm(created, { recursive: true, force: true }))
    dir = created
  }
  await mkdir(join(dir, host))
  const entries = mirrors.map(
    (mirror) => `[host.${toml(mirror)}]\n  capabilities = ["pull", "resolve"]\n`,
  )
  await writeFile(join(dir, host, 'hosts.toml'), entries.join('\n'))
  return dir
}
