/**
 * What a blob transfer leaves behind in memory. Every chunk it moves is a
 * buffer that is dead as soon as the client has it; those must be freed as
 * the transfer goes (young GCs), not pile up until V8 runs a full GC: on
 * Node 24 that is every 64 MB or less, and each one marks the whole heap.
 */
import { getHeapStatistics } from 'node:v8'
import { createHash } from 'node:crypto'
import type { Readable } from 'node:stream'
import t from 'tap'
import { countBytes } from '../../src/observability/count-bytes.ts'
import { SCAVENGE_GROWTH_BYTES } from '../../src/storage/scavenge-pacer.ts'
import { fakeUpstream, serveBytes } from '../helpers/fake-upstream.ts'
import { poolConfig, testPool } from '../helpers/pool.ts'
import { testCache } from '../helpers/read-through.ts'
import { randomBlob } from '../helpers/streams.ts'
import { bodyStream } from '../../src/cache/served-body.ts'

const MiB = 1024 * 1024
const BLOB_BYTES = 64 * MiB
/**
 * Buffers a transfer may hold or have left for the GC at any moment: the
 * growth at which the pacer asks for a young GC, plus what one transfer holds
 * in flight. Without pacing, Node 24 lets 64 MB and more pile up (this test
 * fails there); Node 20 collects by itself once 32 MB of young ArrayBuffers
 * pile up, about the pacer's growth.
 */
const MAX_PILED_UP_BYTES = SCAVENGE_GROWTH_BYTES + 8 * MiB

/** V8's count of external (ArrayBuffer) bytes: what the GC heuristics look at. */
const externalBytes = () => getHeapStatistics().external_memory

interface Watched {
  readonly digest: string
  readonly bytes: number
  /** Highest external memory seen while reading, over what it was at the start. */
  readonly maxGrowth: number
}

/**
 * Reads `served` to its end as a GET sends it, through the counter that
 * http/pull-events.ts puts between every artifact and the socket, sampling
 * external memory at every chunk. (A consumer that reads the TailReader with
 * no stream in between keeps it at the fill's head, on views of the upstream's
 * chunks that the pacer does not count: about 26 MiB piled up. No route
 * serves that way.)
 */
async function drainWatchingMemory(served: Readable): Promise<Watched> {
  const stream = countBytes(served).stream
  const start = externalBytes()
  let maxGrowth = 0
  const hash = createHash('sha256')
  let bytes = 0
  for await (const chunk of stream) {
    hash.update(chunk as Buffer)
    bytes += (chunk as Buffer).length
    maxGrowth = Math.max(maxGrowth, externalBytes() - start)
  }
  return { digest: `sha256:${hash.digest('hex')}`, bytes, maxGrowth }
}

const mib = (bytes: number) => `${(bytes / MiB).toFixed(1)} MiB`

t.test('a cold and a warm GET of 64 MiB never let dead buffers pile up', async (t) => {
  const blob = randomBlob(BLOB_BYTES)
  const up = await fakeUpstream(t, serveBytes(blob.data))
  const { pool } = testPool(t, poolConfig([up.url]))
  const { cache } = await testCache(t)

  const cold = await cache.serve(blob.digest, { pool, path: 'blob' })
  t.equal(cold.cache, 'miss')
  const fill = await drainWatchingMemory(bodyStream(cold.body))
  t.equal(fill.digest, blob.digest)
  t.ok(
    fill.maxGrowth <= MAX_PILED_UP_BYTES,
    `cold: at most ${mib(MAX_PILED_UP_BYTES)} of buffers at once (saw ${mib(fill.maxGrowth)})`,
  )
  await cache.settled()

  const warm = await cache.serve(blob.digest, { pool, path: 'blob' })
  t.equal(warm.cache, 'hit')
  const read = await drainWatchingMemory(bodyStream(warm.body))
  t.equal(read.digest, blob.digest)
  t.ok(
    read.maxGrowth <= MAX_PILED_UP_BYTES,
    `warm: at most ${mib(MAX_PILED_UP_BYTES)} of buffers at once (saw ${mib(read.maxGrowth)})`,
  )
  t.equal(up.count(), 1)
})
