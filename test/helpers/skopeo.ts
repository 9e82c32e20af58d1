/**
 * skopeo run hermetically per test: its own policy, registries.conf, temp dir,
 * cert dir and HOME, so the machine's /etc/containers and auth files cannot
 * change what a test sees. Credentials never appear in error messages.
 */
import { execFile } from 'node:child_process'
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import type { Test } from 'tap'
import { tempDir } from './config.ts'

/** Bound on one skopeo run (a push of tens of MB to a local registry takes seconds). */
const SKOPEO_TIMEOUT_MS = 120_000
/** Largest skopeo stdout accepted (raw manifests are a few KB). */
const SKOPEO_MAX_STDOUT_BYTES = 16 * 1024 * 1024

interface SkopeoSetup {
  readonly globalArgs: string[]
  readonly certDir: string
  readonly env: NodeJS.ProcessEnv
}

const setups = new WeakMap<Test, Promise<SkopeoSetup>>()

/** One private skopeo configuration per test, removed with the test's temp dir. */
function skopeoSetup(t: Test): Promise<SkopeoSetup> {
  let setup = setups.get(t)
  if (!setup) {
    setup = createSkopeoSetup(t)
    setups.set(t, setup)
  }
  return setup
}

async function createSkopeoSetup(t: Test): Promise<SkopeoSetup> {
  const dir = await tempDir(t, 'pt-skopeo-')
  const paths = ['tmp', 'certs', 'registries.d', 'home', 'run'].map((p) => join(dir, p))
  const [tmp, certDir, registriesD, home, run] = paths as [string, string, string, string, string]
  for (const path of paths) await mkdir(path)
  const policy = join(dir, 'policy.json')
  await writeFile(policy, JSON.stringify({ default: [{ type: 'insecureAcceptAnything' }] }))
  const registriesConf = join(dir, 'registries.conf')
  await writeFile(registriesConf, 'unqualified-search-registries = []\n')
  return {
    // --registries-conf is a hidden flag; skopeo 1.9 ignores CONTAINERS_REGISTRIES_CONF.
    // With it set, the only drop-in directory read is $HOME's, which is ours.
    globalArgs: [
      '--policy',
      policy,
      '--registries-conf',
      registriesConf,
      '--registries.d',
      registriesD,
      '--tmpdir',
      tmp,
    ],
    certDir,
    // Only PATH is inherited: auth files, ~/.docker and per-user containers config all
    // resolve inside this dir. The empty cert dir keeps /etc/docker/certs.d out too.
    env: {
      PATH: process.env.PATH,
      HOME: home,
      TMPDIR: tmp,
      XDG_RUNTIME_DIR: run,
      XDG_CONFIG_HOME: join(home, '.config'),
      REGISTRY_AUTH_FILE: join(dir, 'auth.json'),
      DOCKER_CONFIG: join(home, '.docker'),
    },
  }
}

const execFileAsync = promisify(execFile)

/** Runs `skopeo <args>` hermetically for this test; resolves to its stdout, rejects with its stderr. */
export async function skopeo(t: Test, args: readonly string[]): Promise<Buffer> {
  const setup = await skopeoSetup(t)
  try {
    const { stdout } = await execFileAsync('skopeo', [...setup.globalArgs, ...args], {
      env: setup.env,
      encoding: 'buffer',
      timeout: SKOPEO_TIMEOUT_MS,
      maxBuffer: SKOPEO_MAX_STDOUT_BYTES,
    })
    return stdout
  } catch (error) {
    const stderr = (error as { stderr?: Buffer }).stderr?.toString() ?? ''
    throw new Error(`skopeo ${redact(args).join(' ')} failed: ${stderr}`, { cause: error })
  }
}

function redact(args: readonly string[]): string[] {
  return args.map((arg, i) => (/^--(src-|dest-)?creds$/.test(args[i - 1] ?? '') ? '***' : arg))
}

/** skopeo's transport flags for one side of a copy ('src', 'dest') or for inspect (''). */
export async function registryFlags(t: Test, side: 'src' | 'dest' | '', creds: string | undefined) {
  const p = side === '' ? '--' : `--${side}-`
  const { certDir } = await skopeoSetup(t)
  // tls-verify=false: the test registries speak plain HTTP on loopback.
  const flags = [`${p}tls-verify=false`, `${p}cert-dir`, certDir]
  return creds === undefined ? [...flags, `${p}no-creds`] : [...flags, `${p}creds`, creds]
}
