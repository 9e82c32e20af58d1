/**
 * Keeps the short-lived buffers of blob transfers from costing full garbage
 * collections.
 *
 * Every chunk a transfer moves is a fresh ArrayBuffer (a socket read, a file
 * read) that is dead milliseconds later, yet freed only by a GC. V8 11
 * (Node 20) runs a cheap young-generation GC (a scavenge) once 32 MB of young
 * ArrayBuffers pile up. V8 13.6 (Node 24) waits for 128 MB, and long before
 * that starts a Mark-Compact of the whole heap instead (it counts the
 * external bytes allocated since its last one against the old generation's
 * limit): a 200 MiB GET cost 6-17 of them and ran 1.5-3x as long as on
 * Node 20 (bench/RESULTS.md; the V8 change is nodejs/node#61967).
 *
 * The pacer frees them young instead: transfers report the bytes they move,
 * and every TRANSFER_BYTES_PER_CHECK it looks at V8's external bytes; once
 * they have grown by SCAVENGE_GROWTH_BYTES over their low since its last
 * young GC, it asks V8 for one (on Node 20 about when V8 would itself, on
 * Node 24 long before its Mark-Compacts). Bytes that are not new buffers
 * (views of chunks already counted) or that GCs free anyway never make it
 * grow, and then the pacer does nothing.
 */
import { getHeapStatistics, setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'

/** Bytes moved between two looks at V8's external bytes (2 µs each). */
export const TRANSFER_BYTES_PER_CHECK = 1024 * 1024

/**
 * Growth of external bytes that triggers a young GC. It has to be well above
 * the bytes transfers hold in flight (a fill holds up to about 2 MiB:
 * unwritten, recent and queued for its client): a buffer that lives through
 * two young GCs is promoted to the old generation, where only a Mark-Compact
 * frees it, and promoted dead buffers start Mark-Compacts. At 2 MiB, five
 * fills at once (a docker pull of five layers) ran 3-9 Mark-Compacts per
 * 150 MiB and took 1.5-2x the CPU. And it has to stay below what makes V8
 * 13.6 (Node 24) start Mark-Compacts by itself: at 64 MiB, ten fills at once
 * ran 4-9 of them on Node 24. At 32 MiB one, five and ten fills at once run
 * none or next to none on Node 20 and 24 (bench/RESULTS.md, 2026-12-04), for
 * up to 32 MiB of dead buffers waiting for the next young GC. (Scaling it
 * with the transfers running, 4 MiB each, measured no better.)
 */
export const SCAVENGE_GROWTH_BYTES = 32 * 1024 * 1024

/** Runs a young-generation GC now. */
export type MinorGc = () => void

/** V8's exposed `gc`, called with the options that make it a young-generation GC. */
type MinorGcFunction = (options: { type: 'minor' }) => void

export interface ScavengePacerOptions {
  /** The young GC to run; undefined where it cannot be had (the pacer then only counts). */
  readonly gc: MinorGc | undefined
  /** Live external (ArrayBuffer) bytes of this thread's heap. */
  readonly externalBytes: () => number
}

export class ScavengePacer {
  /** Young GCs this pacer asked for. */
  scavenges = 0
  #sinceCheck = 0
  /** Lowest external bytes seen since the last young GC the pacer asked for. */
  #low = Number.POSITIVE_INFINITY

  constructor(private readonly options: ScavengePacerOptions) {}

  /** A transfer moved `bytes` (in buffers that die young); may run a young GC. */
  moved(bytes: number): void {
    this.#sinceCheck += bytes
    if (this.#sinceCheck < TRANSFER_BYTES_PER_CHECK) return
    this.#sinceCheck = 0
    const live = this.options.externalBytes()
    // Right after a GC the freed buffers may not be counted off yet (V8 sweeps them on
    // another thread), so the low is taken from the checks that follow it.
    this.#low = Math.min(this.#low, live)
    if (live - this.#low < SCAVENGE_GROWTH_BYTES || !this.options.gc) return
    this.options.gc()
    this.scavenges++
    this.#low = Number.POSITIVE_INFINITY
  }
}

/**
 * V8's `gc` function, limited to young-generation GCs, or undefined if this
 * runtime refuses it. `--expose-gc` only decides whether contexts created
 * afterwards get a `gc` global: it is set for one new context and reset, so
 * this process's other contexts (and workers) stay as they were.
 */
export function minorGc(): MinorGc | undefined {
  const exposed: unknown = (globalThis as { gc?: unknown }).gc
  // Started with --expose-gc: use that gc and leave the flag alone.
  if (typeof exposed === 'function') return () => (exposed as MinorGcFunction)({ type: 'minor' })
  try {
    setFlagsFromString('--expose-gc')
    const gc: unknown = runInNewContext('typeof gc === "function" ? gc : undefined')
    if (typeof gc !== 'function') return undefined
    return () => (gc as MinorGcFunction)({ type: 'minor' })
  } catch {
    return undefined
  } finally {
    try {
      setFlagsFromString('--no-expose-gc')
    } catch {
      // A runtime that refused to set the flag has nothing to reset.
    }
  }
}

let shared: ScavengePacer | undefined

/**
 * The pacer of this thread, shared by every transfer: the heap it paces is
 * per thread, so one instance sees all the traffic (a module-level instance
 * for that reason, unlike the other components, which are passed in).
 */
export function transferPacer(): ScavengePacer {
  shared ??= new ScavengePacer({ gc: minorGc(), externalBytes: externalBytesReader() })
  return shared
}

/**
 * V8's own count of external bytes, the one its GC heuristics use (about
 * 2 µs; Node 20.20 and 24 have it), else the ArrayBuffer bytes of
 * process.memoryUsage() (25-50 µs, as it reads the RSS too).
 */
function externalBytesReader(): () => number {
  const stats = getHeapStatistics() as { external_memory?: number }
  if (typeof stats.external_memory === 'number')
    return () => (getHeapStatistics() as { external_memory: number }).external_memory
  return () => process.memoryUsage().arrayBuffers
}
