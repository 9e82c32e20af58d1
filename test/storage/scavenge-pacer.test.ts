import { PerformanceObserver, constants } from 'node:perf_hooks'
import t from 'tap'
import {
  SCAVENGE_GROWTH_BYTES,
  ScavengePacer,
  TRANSFER_BYTES_PER_CHECK,
  minorGc,
} from '../../src/storage/scavenge-pacer.ts'

const MiB = 1024 * 1024

/** A pacer over a pretend heap whose external bytes the test sets; counts the GCs it asks for. */
function pretendHeap(options: { gc?: boolean } = {}) {
  const heap = { external: 100 * MiB, gcs: 0 }
  const pacer = new ScavengePacer({
    gc:
      options.gc === false
        ? undefined
        : () => {
            heap.gcs++
          },
    externalBytes: () => heap.external,
  })
  /** Moves `bytes` in check-sized steps; every step's buffers stay alive (nothing frees them). */
  const move = (bytes: number) => {
    for (let moved = 0; moved < bytes; moved += TRANSFER_BYTES_PER_CHECK) {
      heap.external += TRANSFER_BYTES_PER_CHECK
      pacer.moved(TRANSFER_BYTES_PER_CHECK)
    }
  }
  return { heap, pacer, move }
}

t.test('asks for a young GC once external memory has grown by the set amount', async (t) => {
  const { heap, pacer, move } = pretendHeap()
  move(SCAVENGE_GROWTH_BYTES)
  t.equal(heap.gcs, 0, 'not before the growth is reached')
  move(TRANSFER_BYTES_PER_CHECK)
  t.equal(heap.gcs, 1, 'once it is')
  t.equal(pacer.scavenges, 1)
  // The GC freed what had piled up: the next one comes after the same growth again.
  heap.external = 100 * MiB
  move(SCAVENGE_GROWTH_BYTES + 2 * TRANSFER_BYTES_PER_CHECK)
  t.equal(heap.gcs, 2)
})

t.test('asks for nothing while external memory stays down', async (t) => {
  const { heap, pacer } = pretendHeap()
  for (let i = 0; i < 1000; i++) pacer.moved(TRANSFER_BYTES_PER_CHECK)
  t.equal(heap.gcs, 0, 'bytes moved without growth (views, or buffers freed anyway) cost no GC')
})

t.test('looks at external memory only once per check interval', async (t) => {
  let looks = 0
  const pacer = new ScavengePacer({
    gc: () => undefined,
    externalBytes: () => {
      looks++
      return 0
    },
  })
  for (let i = 0; i < 64; i++) pacer.moved(TRANSFER_BYTES_PER_CHECK / 64)
  t.equal(looks, 1)
})

t.test('without a gc function it counts and runs nothing', async (t) => {
  const { pacer, move } = pretendHeap({ gc: false })
  move(10 * SCAVENGE_GROWTH_BYTES)
  t.equal(pacer.scavenges, 0)
})

t.test('minorGc runs a young-generation GC on this runtime', async (t) => {
  const gc = minorGc()
  if (!gc) {
    t.fail(`no gc on ${process.version}`)
    return
  }
  const seen = new Promise<number | undefined>((resolve) => {
    const observer = new PerformanceObserver((list) => {
      observer.disconnect()
      resolve((list.getEntries()[0] as { detail?: { kind?: number } } | undefined)?.detail?.kind)
    })
    observer.observe({ entryTypes: ['gc'] })
  })
  gc()
  t.equal(await seen, constants.NODE_PERFORMANCE_GC_MINOR)
  t.equal(typeof (globalThis as { gc?: unknown }).gc, 'undefined', 'and exposes no global gc')
})
