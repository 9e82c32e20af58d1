/**
 * A Redis primary, a replica and three real redis-sentinel processes on
 * loopback, for failover tests: the sentinels declare the primary down after
 * DOWN_AFTER_MS without answers and promote the replica. Every process is
 * stopped by its PID at test end.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import type { Test } from 'tap'
import { tempDir } from './config.ts'
import { freePort } from './free-port.ts'
import { startRedis, type RedisServer } from './redis-server.ts'

export const MASTER_NAME = 'pt-primary'
/** How long the primary may be silent before the sentinels call it down. */
export const DOWN_AFTER_MS = 1000
const SENTINELS = 3
const START_TIMEOUT_MS = 10_000

export interface SentinelSet {
  readonly primary: RedisServer
  readonly replica: RedisServer
  /** `127.0.0.1:port` of each sentinel. */
  readonly addresses: readonly string[]
  /** Whether every sentinel names the primary on `port` (waiting up to 10 s for them to agree). */
  settled(port: number): Promise<boolean>
}

export async function startSentinels(t: Test): Promise<SentinelSet> {
  const primary = await startRedis(t)
  const replica = await startRedis(t, { replicaOf: primary.port })
  await waitFor(async () => {
    const client = new Redis(replica.url, { lazyConnect: true, maxRetriesPerRequest: 0 })
    try {
      await client.connect()
      return /master_link_status:up/.test(await client.info('replication'))
    } finally {
      client.disconnect()
    }
  }, 'the replica to sync')
  const addresses: string[] = []
  for (let i = 0; i < SENTINELS; i++) {
    const dir = await tempDir(t, 'pt-sentinel-')
    const port = await freePort()
    const conf = join(dir, 'sentinel.conf')
    // Sentinels rewrite their config file: each has its own.
    await writeFile(
      conf,
      [
        `port ${port}`,
        'bind 127.0.0.1',
        `dir ${dir}`,
        `sentinel monitor ${MASTER_NAME} 127.0.0.1 ${primary.port} 2`,
        `sentinel down-after-milliseconds ${MASTER_NAME} ${DOWN_AFTER_MS}`,
        `sentinel failover-timeout ${MASTER_NAME} 5000`,
        `sentinel parallel-syncs ${MASTER_NAME} 1`,
        '',
      ].join('\n'),
    )
    const child = spawn('redis-sentinel', [conf], { stdio: ['ignore', 'pipe', 'pipe'] })
    t.teardown(() => stop(child))
    await readyLine(child, 'Sentinel ID is')
    addresses.push(`127.0.0.1:${port}`)
  }
  const settled = async (port: number) => {
    try {
      await waitFor(
        async () => {
          for (const address of addresses) {
            const answer = (await askSentinel(address, 'get-master-addr-by-name')) as string[]
            if (Number(answer[1]) !== port) return false
          }
          return true
        },
        'the sentinels to agree on the primary',
        10_000,
      )
      return true
    } catch {
      return false
    }
  }
  // Every sentinel has found the replica (and the others) before a test kills anything.
  await waitFor(async () => {
    for (const address of addresses) {
      const info = (await askSentinel(address, 'master')) as string[]
      const field = (name: string) => Number(info[info.indexOf(name) + 1])
      if (field('num-slaves') < 1 || field('num-other-sentinels') < SENTINELS - 1) return false
    }
    return true
  }, 'the sentinels to know the replica and each other')
  return { primary, replica, addresses, settled }
}

/** `SENTINEL <command> <master name>` asked of the sentinel at `address`. */
async function askSentinel(address: string, command: string): Promise<unknown> {
  const [host, port] = address.split(':')
  const client = new Redis({ host, port: Number(port), lazyConnect: true, maxRetriesPerRequest: 0 })
  try {
    await client.connect()
    return await client.call('SENTINEL', command, MASTER_NAME)
  } finally {
    client.disconnect()
  }
}

async function readyLine(child: ChildProcess, line: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    let output = ''
    const timer = setTimeout(() => reject(new Error(`not ready: ${output}`)), START_TIMEOUT_MS)
    child.stdout?.on('data', (data: Buffer) => {
      output += data.toString()
      if (output.includes(line)) {
        clearTimeout(timer)
        resolve()
      }
    })
    child.once('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`exited with ${String(code)}: ${output}`))
    })
  })
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  child.kill('SIGKILL')
  await once(child, 'exit')
}

async function waitFor(
  check: () => Promise<boolean>,
  what: string,
  timeoutMs = 20_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (await check().catch(() => false)) return
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}
