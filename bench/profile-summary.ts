/**
 * Summarizes V8 CPU profiles (`node --cpu-prof`, `.cpuprofile` files): the
 * functions with the most self time, merged by name and location, with
 * `(garbage collector)`, `(program)` and `(idle)` as V8 reports them.
 * Profiles of the same work on two node versions side by side show where the
 * time went. With `--windows` (the windows.json bench/node-versions.ts writes
 * next to its profiles) only the samples taken during the measured GETs of
 * `--phase` (cold or warm) by that process count.
 * Usage: node --import tsx bench/profile-summary.ts [--top 25] [--windows FILE --phase cold] FILE...
 */
import { readFile } from 'node:fs/promises'
import { basename } from 'node:path'
import { parseArgs } from 'node:util'
import type { ProfileWindow } from './node-versions.ts'
import { oneOf, positiveInt } from './shared.ts'

interface ProfileNode {
  readonly id: number
  readonly callFrame: {
    readonly functionName: string
    readonly url: string
    readonly lineNumber: number
  }
}

interface Profile {
  /** µs on the monotonic clock (process.hrtime). */
  readonly startTime: number
  readonly nodes: readonly ProfileNode[]
  readonly samples: readonly number[]
  /** Microseconds between a sample and the previous one. */
  readonly timeDeltas: readonly number[]
}

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    top: { type: 'string', default: '25' },
    windows: { type: 'string' },
    phase: { type: 'string', default: 'cold' },
  },
})
const TOP = positiveInt('top', values.top)
const PHASE = oneOf('phase', values.phase, ['cold', 'warm'])
const WINDOWS =
  values.windows === undefined
    ? undefined
    : (JSON.parse(await readFile(values.windows, 'utf8')) as ProfileWindow[]).filter(
        (w) => w.phase === PHASE,
      )

/** The pid in a `--cpu-prof` file name: `CPU.<date>.<time>.<pid>.<thread>.<seq>.cpuprofile`. */
function pidOf(file: string): number {
  return Number(basename(file).split('.')[3])
}

/** `name file:line`, short enough for a table. */
function label(node: ProfileNode): string {
  const { functionName, url, lineNumber } = node.callFrame
  const name = functionName === '' ? '(anonymous)' : functionName
  if (url === '') return name
  const file = url.replace(/^.*\/node_modules\//, '').replace(/^file:\/\/.*\/(src|bench)\//, '$1/')
  return `${name} ${file.startsWith('node:') ? file : basename(file)}:${lineNumber + 1}`
}

/** Self milliseconds per label, and the total, of the samples `keep` accepts (by timestamp, µs). */
function selfTimes(
  profile: Profile,
  keep: (us: number) => boolean,
): { byLabel: Map<string, number>; totalMs: number } {
  const labels = new Map<number, string>(profile.nodes.map((n) => [n.id, label(n)]))
  const byLabel = new Map<string, number>()
  let totalMs = 0
  let us = profile.startTime
  profile.samples.forEach((id, i) => {
    const delta = profile.timeDeltas[i] ?? 0
    us += delta
    if (!keep(us)) return
    const ms = delta / 1000
    totalMs += ms
    const key = labels.get(id) ?? '(unknown)'
    byLabel.set(key, (byLabel.get(key) ?? 0) + ms)
  })
  return { byLabel, totalMs }
}

for (const file of positionals) {
  const profile = JSON.parse(await readFile(file, 'utf8')) as Profile
  const pid = pidOf(file)
  const spans = WINDOWS?.filter((w) => w.pid === pid)
  const keep = spans
    ? (us: number) => spans.some((w) => us >= w.startUs && us <= w.endUs)
    : () => true
  const { byLabel, totalMs } = selfTimes(profile, keep)
  const idle = byLabel.get('(idle)') ?? 0
  const scope = spans ? ` during ${spans.length} ${PHASE} GETs` : ''
  process.stdout.write(
    `\n${file}${scope}: ${totalMs.toFixed(0)} ms sampled, ${(totalMs - idle).toFixed(0)} ms not idle\n\n`,
  )
  process.stdout.write('| self ms | % of not idle | function |\n|---:|---:|---|\n')
  const sorted = [...byLabel.entries()]
    .filter(([name]) => name !== '(idle)')
    .sort((a, b) => b[1] - a[1])
  for (const [name, ms] of sorted.slice(0, TOP))
    process.stdout.write(
      `| ${ms.toFixed(0)} | ${((100 * ms) / (totalMs - idle)).toFixed(1)} | ${name} |\n`,
    )
}
