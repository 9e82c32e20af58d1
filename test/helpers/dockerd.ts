/**
 * A real Docker daemon (Debian's dockerd) for one test: its own data-root,
 * exec-root, socket, daemon.json and containerd, all in a temp dir, so it
 * needs no system engine and leaves nothing behind. It pulls with the vfs
 * driver and no networking set-up (no bridge, no iptables), which works
 * without overlay or netfilter privileges.
 */
import { spawn } from 'node:child_process'
import { constants } from 'node:fs'
import { access, mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { Test } from 'tap'
import {
  assertSocketPathFits,
  captureOutput,
  cleanUpAtEnd,
  daemonDir,
  launchContainerd,
  runCommand,
  stopProcess,
  waitForLogLine,
  type CommandResult,
  type TestContainerd,
} from './containerd.ts'

/** How long dockerd may take to serve its API (it takes about 0.2 s here). */
const START_TIMEOUT_MS = 30_000
/** Default bound on one docker CLI run. */
const DOCKER_TIMEOUT_MS = 120_000
/** Seconds dockerd gives running containers on shutdown before killing them. */
const CONTAINER_SHUTDOWN_TIMEOUT_S = 1
/**
 * Debian's docker.io client, the same release as its dockerd. Another
 * `docker` can come first on PATH (this image has a newer static CLI in
 * /usr/local/bin that no package owns), so it is run by path when present.
 */
const DEBIAN_DOCKER_CLI = '/usr/bin/docker'
/** Client variables that conflict with --host (DOCKER_CONTEXT) or point elsewhere. */
const IGNORED_CLIENT_ENV = new Set([
  'DOCKER_HOST',
  'DOCKER_CONTEXT',
  'DOCKER_TLS_VERIFY',
  'DOCKER_CERT_PATH',
])
/** dockerd and runc live in sbin, which a non-login PATH may lack. */
const SBIN_DIRS = ['/usr/sbin', '/sbin']

export interface DockerdOptions {
  /** daemon.json "registry-mirrors": tried, in order, for Docker Hub images only. */
  readonly registryMirrors?: readonly string[]
  /** daemon.json "insecure-registries": host:port or CIDR spoken to over plain HTTP. */
  readonly insecureRegistries?: readonly string[]
  /** More daemon.json keys; none may repeat a command-line flag set here, or dockerd refuses to start. */
  readonly daemonConfig?: Readonly<Record<string, unknown>>
}

export interface DockerOptions {
  readonly timeoutMs?: number
}

export interface TestDockerd {
  /** The API socket, as `unix:///...` (what `docker -H` and DOCKER_HOST take). */
  readonly host: string
  /** The containerd this dockerd runs containers on. */
  readonly containerd: TestContainerd
  /** Runs the docker CLI against this daemon with an empty client config; resolves whatever the exit code. */
  docker(args: readonly string[], options?: DockerOptions): Promise<CommandResult>
  /** What dockerd has logged so far (the tail). */
  logs(): string
}

async function dockerCli(): Promise<string> {
  try {
    await access(DEBIAN_DOCKER_CLI, constants.X_OK)
    return DEBIAN_DOCKER_CLI
  } catch {
    return 'docker'
  }
}

function withSbin(path: string | undefined): string {
  const dirs = (path ?? '').split(':').filter((d) => d !== '')
  return [...dirs, ...SBIN_DIRS.filter((d) => !dirs.includes(d))].join(':')
}

function daemonJson(dir: string, options: DockerdOptions): string {
  return JSON.stringify(
    {
      'registry-mirrors': options.registryMirrors ?? [],
      'insecure-registries': options.insecureRegistries ?? [],
      // dockerd 20.10 writes its trust key to /etc/docker/key.json unless told otherwise.
      'deprecated-key-path': join(dir, 'key.json'),
      'shutdown-timeout': CONTAINER_SHUTDOWN_TIMEOUT_S,
      ...options.daemonConfig,
    },
    null,
    2,
  )
}

/**
 * Starts dockerd for this test and waits until its API answers; stopped by PID
 * (SIGTERM, then SIGKILL), its containerd after it, at test end.
 */
export async function startDockerd(t: Test, options: DockerdOptions = {}): Promise<TestDockerd> {
  const dir = await daemonDir('pt-dockerd-')
  const onEnd = cleanUpAtEnd(t, dir)
  const socket = join(dir, 'docker.sock')
  assertSocketPathFits(socket)
  const host = `unix://${socket}`
  const clientConfig = join(dir, 'client')
  const containerdDir = join(dir, 'containerd')
  await Promise.all([mkdir(clientConfig), mkdir(containerdDir)])
  const configFile = join(dir, 'daemon.json')
  await writeFile(configFile, daemonJson(dir, options))

  // Our own containerd rather than the one dockerd would start: we hold its
  // PID, stop it after dockerd, and tests can inspect it with ctr (namespace "moby").
  const containerd = await launchContainerd(containerdDir)
  onEnd(() => containerd.stop())

  const env = { ...process.env, PATH: withSbin(process.env.PATH) }
  const child = spawn(
    'dockerd',
    [
      '--config-file',
      configFile,
      '--data-root',
      join(dir, 'data'),
      '--exec-root',
      join(dir, 'exec'),
      '--pidfile',
      join(dir, 'dockerd.pid'),
      '--host',
      host,
      '--containerd',
      containerd.address,
      // vfs copies layers instead of mounting them: slow for big images, but
      // needs no overlay support and leaves no mounts if dockerd is killed.
      '--storage-driver',
      'vfs',
      // Leave the host's netfilter and interfaces alone; pulls need none of it.
      '--iptables=false',
      '--ip6tables=false',
      '--ip-masq=false',
      '--bridge=none',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'], env },
  )
  const logs = captureOutput(child)
  onEnd(() => stopProcess(child))
  await waitForLogLine(child, logs, `API listen on ${socket}`, START_TIMEOUT_MS)

  const cli = await dockerCli()
  const clientEnv: NodeJS.ProcessEnv = {
    ...Object.fromEntries(Object.entries(env).filter(([name]) => !IGNORED_CLIENT_ENV.has(name))),
    // An empty config dir: no user's credentials, contexts or proxies leak in.
    DOCKER_CONFIG: clientConfig,
  }
  const docker = (args: readonly string[], dockerOptions: DockerOptions = {}) =>
    runCommand(cli, ['--host', host, ...args], {
      env: clientEnv,
      timeoutMs: dockerOptions.timeoutMs ?? DOCKER_TIMEOUT_MS,
    })

  const version = await docker(['version', '--format', '{{.Server.Version}}'], {
    timeoutMs: START_TIMEOUT_MS,
  })
  if (version.code !== 0) {
    throw new Error(`dockerd listens but does not answer: ${version.stderr}\n${logs()}`)
  }
  return { host, containerd, docker, logs }
}
