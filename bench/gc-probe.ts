/**
 * Preloaded into the servers bench/node-versions.ts starts (`--import`): counts
 * the main thread's garbage collections and their pauses, and at most every
 * REPORT_INTERVAL_MS, when they changed, prints the running totals as one
 * stdout line: `pt-gc <minor> <major> <other> <pause ms>` (other: incremental
 * marking steps, weak callbacks; the pause sums every kind).
 *
 * A PerformanceObserver rather than `--trace-gc`: on Node 24 that flag itself
 * changes how often V8 starts Mark-Compacts (measured: 9-13 per 200 MiB GET
 * with it where there were none without), and prom-client observes GCs in the
 * server anyway. Totals on a timer rather than a line per GC: a transfer can
 * run a hundred young GCs.
 */
import { PerformanceObserver, constants, type PerformanceEntry } from 'node:perf_hooks'

const REPORT_INTERVAL_MS = 100

const totals = { minor: 0, major: 0, other: 0, pauseMs: 0 }
let changed = false

new PerformanceObserver((list) => {
  for (const entry of list.getEntries() as (PerformanceEntry & { detail?: { kind?: number } })[]) {
    const kind = entry.detail?.kind
    if (kind === constants.NODE_PERFORMANCE_GC_MINOR) totals.minor++
    else if (kind === constants.NODE_PERFORMANCE_GC_MAJOR) totals.major++
    else totals.other++
    totals.pauseMs += entry.duration
    changed = true
  }
}).observe({ entryTypes: ['gc'] })

setInterval(() => {
  if (!changed) return
  changed = false
  const { minor, major, other, pauseMs } = totals
  process.stdout.write(`pt-gc ${minor} ${major} ${other} ${pauseMs.toFixed(3)}\n`)
}, REPORT_INTERVAL_MS).unref()
