/**
 * One cold fill rehearsed at boot, so the first pull after a start runs
 * compiled code.
 *
 * A new process runs the transfer path's JavaScript (undici's body handling,
 * the fill, the temp-file writer, the readers, the HTTP response) in V8's
 * interpreter until its optimizing compiler has caught up, on helper threads
 * that compete with the transfer for the cores. Measured on a 2-core machine
 * (bench/RESULTS.md, 2026-12-04): those threads spent 0.3-0.6 s of CPU during
 * the first cold 200 MiB GET against 0.1-0.2 s later, and the first GET took
 * up to 1.5x as long as the later ones; after one 64 MiB transfer the first
 * measured GET was within 1.0x-1.23x of them.
 *
 * The rehearsal is that transfer, through the same code, on loopback only:
 * an in-process upstream sends REHEARSAL_BYTES, a Fill writes them to a
 * throwaway store in a temp directory beside the real one (same disk, same
 * writer) and a reader streams them through an HTTP response to an undici
 * client. Nothing reaches the real store, its metrics or the logs, and the
 * directory is removed at the end. It never stops the server from starting:
 * a failure is logged and ignored.
 */
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises'
import { createServer, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { Registry } from 'prom-client'
import { request } from 'undici'
import type { Logger } from '../observability/logger.ts'
import { createMetrics } from '../observability/metrics.ts'
import { BlobStore } from '../storage/blob-store.ts'
import { createSha256, hashToDigest } from '../storage/digest.ts'
import { UpstreamPool } from '../upstream/pool.ts'
import { Fill } from './fill.ts'

/** Bytes rehearsed: one 64 MiB transfer got the first 200 MiB pull within 1.23x of later ones. */
export const REHEARSAL_BYTES = 64 * 1024 * 1024

/** The rehearsal is given up after this long (a slow or busy disk must not hold the start). */
export const REHEARSAL_TIMEOUT_MS = 30_000

/** Where rehearsals write: `<storage.path>/.rehearsal-XXXXXX`. */
const DIR_PREFIX = '.rehearsal-'

/**
 * A rehearsal directory this old was left by a process killed mid-rehearsal
 * and is removed; a younger one may be another replica's (shared volume).
 */
const LEFTOVER_AGE_MS = 2 * REHEARSAL_TIMEOUT_MS

/** The upstream repeats one random block (the content need not be unique, only hashed). */
const BLOCK_BYTES = 1024 * 1024

/** The upstream's writes, the size a socket read delivers. */
const WRITE_BYTES = 64 * 1024

export interface Rehearsal {
  readonly bytes: number
  readonly ms: number
}

/**
 * Rehearses one fill of `bytes` through a temp directory created in
 * `parentDir` (the storage directory, so the writes go to the same disk).
 */
export async function rehearseFill(
  parentDir: string,
  logger: Logger,
  bytes = REHEARSAL_BYTES,
): Promise<Rehearsal> {
  const started = performance.now()
  const signal = AbortSignal.timeout(REHEARSAL_TIMEOUT_MS)
  const block = randomBytes(BLOCK_BYTES)
  const digest = digestOfRepeated(block, bytes)
  const quiet = logger.child({ component: 'rehearsal' }, { level: 'silent' })
  const metrics = createMetrics(new Registry(), { defaultMetrics: false })
  await removeLeftovers(parentDir)
  const dir = await mkdtemp(join(parentDir, DIR_PREFIX))
  const servers: Server[] = []
  let pool: UpstreamPool | undefined
  let fill: Fill | undefined
  try {
    const upstream = await listen(
      createServer((_req, res) => {
        sendRepeated(res, block, bytes)
      }),
    )
    servers.push(upstream.server)
    const blobs = await BlobStore.open(dir)
    pool = new UpstreamPool(
      {
        name: 'rehearsal',
        upstreams: [{ url: upstream.url }],
        selection: 'ordered',
        timeouts: {
          connect: REHEARSAL_TIMEOUT_MS,
          headers: REHEARSAL_TIMEOUT_MS,
          bodyIdle: REHEARSAL_TIMEOUT_MS,
          document: REHEARSAL_TIMEOUT_MS,
        },
        retry: { attempts: 1, backoffBase: 100, backoffMax: 1_000, budget: REHEARSAL_TIMEOUT_MS },
        breaker: { failures: 5, cooldown: 10_000 },
      },
      { logger: quiet, metrics },
    )
    const source = { pool, path: '/blob' }
    const downstream = await listen(
      createServer((_req, res) => {
        const running = new Fill(digest, source, {
          blobs,
          metrics,
          logger: quiet,
          maxBlobBytes: bytes,
        })
        fill = running
        running.ready
          .then(async () => {
            res.writeHead(200, { 'content-length': String(bytes) })
            await pipeline(running.createReader(), res)
          })
          .catch(() => res.destroy())
      }),
    )
    servers.push(downstream.server)
    const res = await request(downstream.url, { signal })
    let received = 0
    for await (const chunk of res.body) received += (chunk as Buffer).length
    if (res.statusCode !== 200 || received !== bytes)
      throw new Error(`rehearsal got ${String(received)} of ${String(bytes)} bytes`)
    // The commit (fsync, rename) is part of the path, and must be over before the directory goes.
    await settled(fill, signal)
    return { bytes, ms: performance.now() - started }
  } finally {
    fill?.abort()
    await settled(fill, signal)
    for (const server of servers) {
      server.closeAllConnections()
      server.close()
    }
    await pool?.close()
    await rm(dir, { recursive: true, force: true })
  }
}

async function removeLeftovers(parentDir: string): Promise<void> {
  for (const name of await readdir(parentDir)) {
    if (!name.startsWith(DIR_PREFIX)) continue
    const path = join(parentDir, name)
    const info = await stat(path).catch(() => undefined)
    if (info && Date.now() - info.mtimeMs > LEFTOVER_AGE_MS)
      await rm(path, { recursive: true, force: true })
  }
}

/** Waits for the fill to end either way, or for `signal` (the rehearsal's time is up). */
async function settled(fill: Fill | undefined, signal: AbortSignal): Promise<void> {
  if (!fill || signal.aborted) return
  const aborted = new Promise<void>((resolve) =>
    signal.addEventListener('abort', () => resolve(), { once: true }),
  )
  await Promise.race([fill.done.catch(() => undefined), aborted])
}

/** The digest of `block` repeated up to `bytes`. */
function digestOfRepeated(block: Buffer, bytes: number): string {
  const hash = createSha256()
  for (let at = 0; at < bytes; at += block.length) hash.update(block.subarray(0, bytes - at))
  return hashToDigest(hash)
}

/** Answers with `block` repeated up to `bytes`, in socket-sized writes. */
function sendRepeated(res: ServerResponse, block: Buffer, bytes: number): void {
  res.writeHead(200, {
    'content-length': String(bytes),
    'content-type': 'application/octet-stream',
  })
  function* chunks(): Generator<Buffer> {
    for (let at = 0; at < bytes; at += WRITE_BYTES) {
      const from = at % block.length
      yield block.subarray(from, from + Math.min(WRITE_BYTES, bytes - at))
    }
  }
  // A client that goes away ends the pipeline with an error nobody needs.
  pipeline(Readable.from(chunks(), { objectMode: false }), res).catch(() => undefined)
}

async function listen(server: Server): Promise<{ server: Server; url: string }> {
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as AddressInfo
  return { server, url: `http://127.0.0.1:${String(port)}` }
}
