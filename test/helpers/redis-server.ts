/**
 * A real redis-server on a free loopback port, started for one test and
 * stopped (by its PID) at the end. `kill` simulates an outage; `restart` brings
 * it back on the same port, empty.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import type { Test } from 'tap'
import { RedisMetadataStore } from '../../src/metadata/redis-store.ts'
import { tempDir } from './config.ts'
import { freePort } from './free-port.ts'

/** How long redis-server may take to accept connections. */
const START_TIMEOUT_MS = 10_000

export interface RedisServer {
  readonly url: string
  readonly port: number
  /** SIGKILL: the server vanishes mid-conversation. */
  kill(): Promise<void>
  /** Starts it again on the same port. */
  restart(): Promise<void>
  /** SIGSTOP / SIGCONT: a server that still holds connections but answers nothing. */
  pause(): void
  resume(): void
}

export interface RedisOptions {
  /** Start as a replica of this primary's port. */
  readonly replicaOf?: number
}

export async function startRedis(t: Test, options: RedisOptions = {}): Promise<RedisServer> {
  const dir = await tempDir(t, 'pt-redis-')
  const port = await freePort()
  let child: ChildProcess | undefined
  const replica =
    options.replicaOf === undefined ? [] : ['--replicaof', '127.0.0.1', String(options.replicaOf)]

  const start = async () => {
    const proc = spawn(
      'redis-server',
      [
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--save',
        '',
        '--appendonly',
        'no',
        '--dir',
        dir,
        ...replica,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    )
    child = proc
    await new Promise<void>((resolve, reject) => {
      let output = ''
      const timer = setTimeout(
        () => reject(new Error(`redis-server did not start: ${output}`)),
        START_TIMEOUT_MS,
      )
      proc.stdout.on('data', (data: Buffer) => {
        output += data.toString()
        if (output.includes('Ready to accept connections')) {
          clearTimeout(timer)
          resolve()
        }
      })
      proc.once('exit', (code) => {
        clearTimeout(timer)
        reject(new Error(`redis-server exited with ${String(code)}: ${output}`))
      })
    })
  }

  const kill = async () => {
    const proc = child
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return
    proc.kill('SIGKILL')
    await once(proc, 'exit')
  }

  await start()
  t.teardown(kill)
  return {
    url: `redis://127.0.0.1:${port}/0`,
    port,
    kill,
    restart: start,
    pause: () => child?.kill('SIGSTOP'),
    resume: () => child?.kill('SIGCONT'),
  }
}

/** A Redis metadata store on `url` with short timeouts, closed at test end. */
export async function redisStore(t: Test, url: string): Promise<RedisMetadataStore> {
  const store = await RedisMetadataStore.connect({
    url,
    connectTimeoutMs: 2000,
    commandTimeoutMs: 500,
  })
  t.teardown(() => store.close())
  return store
}
