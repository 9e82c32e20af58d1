/**
 * CI's closing lines, from the output of one or more tap runs:
 *
 *   node --import tsx scripts/tap-summary.ts <label> <log> <exit status> [<label> <log> <status>...]
 *
 * For each run it names every skipped and todo test with its reason and every
 * failed test, then gives the run's counts; the last line adds up all runs as
 * `N passed, M failed, K skipped`. It exits 0 only when every run exited 0,
 * counted tests and failed none.
 *
 * Counting: passed and failed are tap's `pass` and `fail`; skipped is tap's
 * `skip` plus `todo` (a todo test is neither passed nor failed). A run that
 * exited non-zero with no failed test (a crash, a timeout outside a test), or
 * that ran no test at all, counts one failure.
 */
import { readFileSync } from 'node:fs'
import { pathToFileURL } from 'node:url'

/** tap's closing counts: `# { total: 6, pass: 2, fail: 1, todo: 1, skip: 2 }`. */
const COUNTS_RE = /^# \{ total: \d+(?:, \w+: \d+)* \}$/
/** A test point: indent, `ok`/`not ok`, number, name, then an optional directive. */
const POINT_RE = /^( *)(not ok|ok) \d+(?: - (.*?))?(?: # (SKIP|TODO)\S*(?: (.*))?)?$/i
const SUBTEST_RE = /^( *)# Subtest: (.*)$/
/** tap nests each subtest's lines by this many spaces. */
const INDENT = 4

interface Counts {
  readonly total: number
  readonly pass: number
  readonly fail: number
  readonly skip: number
  readonly todo: number
}

interface Skipped {
  readonly kind: 'skip' | 'todo'
  /** File and subtest names down to the skipped test, joined with ` > `. */
  readonly path: string
  readonly reason: string
}

interface RunReport {
  readonly counts: Counts | undefined
  readonly skipped: readonly Skipped[]
  /** The innermost failed tests (not each parent that failed because of them). */
  readonly failed: readonly string[]
}

/** tap escapes `#` and `\` in test names. */
function unescape(name: string): string {
  return name.replace(/\\([#\\])/g, '$1').replace(/ # time=[\d.]+m?s$/, '')
}

/** Reads tap's output: the last closing counts, each skip and todo, each failure. */
function readTapOutput(text: string): RunReport {
  let counts: Counts | undefined
  const skipped: Skipped[] = []
  const failed: string[] = []
  /** Names of the open subtests, one per nesting level. */
  const open: string[] = []
  let yamlIndent: number | undefined
  let afterPoint = false
  for (const line of text.split('\n')) {
    const trimmed = line.trimStart()
    const indent = line.length - trimmed.length
    // Skip the YAML diagnostics that may follow a test point: their source
    // excerpts may quote anything.
    if (yamlIndent !== undefined) {
      if (indent === yamlIndent && trimmed === '...') yamlIndent = undefined
      continue
    }
    if (afterPoint && trimmed === '---') {
      yamlIndent = indent
      continue
    }
    afterPoint = false
    if (COUNTS_RE.test(line)) {
      const field = (name: string) => Number(new RegExp(`\\b${name}: (\\d+)`).exec(line)?.[1] ?? 0)
      counts = {
        total: field('total'),
        pass: field('pass'),
        fail: field('fail'),
        skip: field('skip'),
        todo: field('todo'),
      }
      continue
    }
    const subtest = SUBTEST_RE.exec(line)
    if (subtest) {
      const level = Math.floor(indent / INDENT)
      open.length = level
      open[level] = unescape(subtest[2] ?? '')
      continue
    }
    const point = POINT_RE.exec(line)
    if (!point) continue
    afterPoint = true
    const level = Math.floor(indent / INDENT)
    const path = [...open.slice(0, level), unescape(point[3] ?? '(unnamed)')].join(' > ')
    const directive = point[4]?.toLowerCase()
    if (directive === 'skip' || directive === 'todo') {
      skipped.push({ kind: directive, path, reason: point[5]?.trim() || '(no reason given)' })
    } else if (point[2] === 'not ok' && !failed.some((f) => f.startsWith(`${path} > `))) {
      failed.push(path)
    }
  }
  return { counts, skipped, failed }
}

interface Tally {
  readonly passed: number
  readonly failed: number
  readonly skipped: number
}

/** The counts CI reports for one run, given tap's exit status (see the header). */
function tally(report: RunReport, status: number): Tally {
  const counts = report.counts ?? { total: 0, pass: 0, fail: 0, skip: 0, todo: 0 }
  let failed = counts.fail
  if (failed === 0 && (status !== 0 || counts.total === 0)) failed = 1
  return { passed: counts.pass, failed, skipped: counts.skip + counts.todo }
}

function line(t: Tally): string {
  return `${t.passed} passed, ${t.failed} failed, ${t.skipped} skipped`
}

/** One tap run: its label (`node v24.22.3`), its output and the exit status of its command. */
export interface TapRun {
  readonly label: string
  readonly output: string
  /** As the shell gave it; anything but a number means the run never reached tap. */
  readonly status: string
}

/** The closing lines for `runs`, the sum last; ok when every run passed. */
export function summarize(runs: readonly TapRun[]): { lines: string[]; ok: boolean } {
  const lines: string[] = []
  const sum = { passed: 0, failed: 0, skipped: 0 }
  let ok = true
  for (const { label, output, status } of runs) {
    const report = readTapOutput(output)
    const run = tally(report, /^\d+$/.test(status) ? Number(status) : 1)
    for (const s of report.skipped) lines.push(`${label} ${s.kind}: ${s.path}: ${s.reason}`)
    for (const f of report.failed) lines.push(`${label} failed: ${f}`)
    if (report.counts === undefined) lines.push(`${label}: tap printed no closing counts`)
    // Not "N passed, ..." alone on a line: only the last line is the verdict.
    lines.push(`${label} (exit ${status}): ${line(run)}`)
    sum.passed += run.passed
    sum.failed += run.failed
    sum.skipped += run.skipped
    ok &&= run.failed === 0
  }
  lines.push(line(sum))
  return { lines, ok }
}

function main(args: readonly string[]): number {
  if (args.length === 0 || args.length % 3 !== 0) {
    process.stderr.write('usage: tap-summary.ts <label> <log> <exit status> [...]\n')
    return 2
  }
  const runs: TapRun[] = []
  for (let i = 0; i < args.length; i += 3) {
    const [label = '', log = '', status = ''] = args.slice(i, i + 3)
    let output = ''
    try {
      output = readFileSync(log, 'utf8')
    } catch (error) {
      process.stdout.write(`${label}: cannot read ${log}: ${String(error)}\n`)
    }
    runs.push({ label, output, status })
  }
  const { lines, ok } = summarize(runs)
  process.stdout.write(`${lines.join('\n')}\n`)
  return ok ? 0 : 1
}

const script = process.argv[1]
if (script !== undefined && import.meta.url === pathToFileURL(script).href) {
  process.exitCode = main(process.argv.slice(2))
}
