/** Runs the real CLI (src/cli.ts through tsx) as a child process. */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process'
import { once } from 'node:events'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import type { Test } from 'tap'

export const CLI = fileURLToPath(new URL('../../src/cli.ts', import.meta.url))
const TSX = import.meta.resolve('tsx')

/** How long a child may take to start listening before the test gives up. */
const START_TIMEOUT_MS = 20_000

/** Environment without the caller's PULLTHROUGH_* settings, so tests see only what they set. */
export function cleanEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [key, value] of Object.entries(process.env))
    if (!key.startsWith('PULLTHROUGH_')) env[key] = value
  return { ...env, ...extra }
}

export interface CliResult {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  readonly stdout: string
  readonly stderr: string
}

/** Spawns `node [--import tsx] script args`, killing it at test end if still running. */
export function spawnNode(
  t: Test,
  script: string,
  args: string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv } = {},
) {
  // Resolved here: the child's working directory may be a temp dir with no node_modules.
  const nodeArgs = script.endsWith('.ts') ? ['--import', TSX, script, ...args] : [script, ...args]
  const child = spawn(process.execPath, nodeArgs, {
    cwd: options.cwd,
    env: options.env ?? cleanEnv(),
    stdio: 'pipe',
  })
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  })
  return child
}

/** Runs to completion and collects output. */
export async function runCli(
  t: Test,
  args: string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<CliResult> {
  const child = spawnNode(t, CLI, args, options)
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
  const [code, signal] = (await once(child, 'exit')) as [number | null, NodeJS.Signals | null]
  return { code, signal, stdout, stderr }
}

/** Resolves with the URL from the child's "listening" log line; rejects if it exits first or takes too long. */
export async function waitListening(
  child: ChildProcessWithoutNullStreams,
  /** Receives the message of every log line up to and including 'listening'. */
  logged: string[] = [],
): Promise<string> {
  const lines = createInterface({ input: child.stdout })
  let stderr = ''
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
  return new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new Error(`server did not listen within ${START_TIMEOUT_MS} ms: ${stderr}`))
    }, START_TIMEOUT_MS)
    child.once('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`server exited with ${String(code)} before listening: ${stderr}`))
    })
    lines.on('line', (line) => {
      try {
        const entry = JSON.parse(line) as { msg?: string; url?: string }
        if (entry.msg !== undefined) logged.push(entry.msg)
        if (entry.msg === 'listening' && entry.url) {
          clearTimeout(timer)
          resolve(entry.url)
        }
      } catch {
        // not a log line
      }
    })
  })
}

/** Resolves with the exit code once the child has exited. */
export async function exitCode(child: ChildProcessWithoutNullStreams): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return child.exitCode
  const [code] = (await once(child, 'exit')) as [number | null]
  return code
}
