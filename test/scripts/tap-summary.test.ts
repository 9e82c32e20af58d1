/**
 * CI's closing lines (scripts/tap-summary.ts, run by .ci/run) read from the
 * output of a real tap run: each skip and todo with its reason, each failure,
 * the counts of each run and last the sum as `N passed, M failed, K skipped`.
 * The tap runs here use this checkout's tap on small fixture files in a temp
 * project, so they write nothing into the checkout.
 */
import { mkdir, symlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { summarize } from '../../scripts/tap-summary.ts'
import { ROOT } from '../deploy/files.ts'
import { exitCode, spawnNode } from '../helpers/cli.ts'
import { tempDir } from '../helpers/config.ts'

const TAP = join(ROOT, 'node_modules', '.bin', 'tap')
const SUMMARY = join(ROOT, 'scripts', 'tap-summary.ts')

const CLEAN_FIXTURE = `import t from 'tap'
t.test('passes', async (t) => t.pass('fine'))
t.test('needs a newer pip', { skip: 'no pip >= 24 found; searched /usr/bin/python3 (pip 23.0.1)' }, async () => {})
t.test('outer', async (t) => {
  t.test('inner # with a hash', { skip: true }, async () => {})
  t.test('not yet', { todo: 'waits for the next release' }, async () => {})
})
`

const FAILING_FIXTURE = `import t from 'tap'
t.test('passes', async (t) => t.pass('fine'))
t.test('outer', async (t) => {
  t.test('compares', async (t) => {
    t.equal(1, 2, 'one is two')
    t.pass('--- not YAML: ok 9 - nor a test point')
  })
})
`

interface Output {
  readonly code: number | null
  readonly stdout: string
}

/** Runs `node script args` in `cwd` with `env`; resolves with its exit code and stdout. */
async function runNode(
  t: Test,
  script: string,
  args: string[],
  options: { cwd: string; env: NodeJS.ProcessEnv },
): Promise<Output> {
  const child = spawnNode(t, script, args, options)
  let stdout = ''
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
  child.stderr.resume()
  return { code: await exitCode(child), stdout }
}

/** This environment without the variables that make a tap run a child of this one. */
function outsideTap(): NodeJS.ProcessEnv {
  return Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !/^_?TAP/i.test(k) && k !== 'NODE_OPTIONS'),
  )
}

/** Runs tap on one fixture file in a temp project; returns its output, also kept in a file. */
async function tapRun(
  t: Test,
  fixture: string,
): Promise<{ log: string; output: string; code: number | null }> {
  const dir = await tempDir(t, 'pt-tap-')
  await symlink(join(ROOT, 'node_modules'), join(dir, 'node_modules'))
  // The plugin set this checkout's tap is built with, so tap needs no rebuild.
  const tapConfig = { 'disable-coverage': true, plugin: ['!@tapjs/typescript'] }
  await writeFile(join(dir, 'package.json'), JSON.stringify({ type: 'module', tap: tapConfig }))
  await mkdir(join(dir, 'test'))
  await writeFile(join(dir, 'test', 'fixture.test.mjs'), fixture)
  const run = await runNode(t, TAP, ['test/fixture.test.mjs'], { cwd: dir, env: outsideTap() })
  const log = join(dir, 'tap.log')
  await writeFile(log, run.stdout)
  return { log, output: run.stdout, code: run.code }
}

async function summaryCli(t: Test, args: string[]): Promise<Output & { lines: string[] }> {
  const run = await runNode(t, SUMMARY, args, { cwd: ROOT, env: outsideTap() })
  return { ...run, lines: run.stdout.trimEnd().split('\n') }
}

const [clean, failing] = await Promise.all([tapRun(t, CLEAN_FIXTURE), tapRun(t, FAILING_FIXTURE)])

t.test('every skipped and todo test is named with its reason and counted as skipped', async (t) => {
  t.equal(clean.code, 0, 'tap passed the clean fixture')
  const out = summarize([{ label: 'node A', output: clean.output, status: String(clean.code) }])
  t.ok(out.ok)
  t.same(out.lines, [
    'node A skip: test/fixture.test.mjs > needs a newer pip: no pip >= 24 found; searched /usr/bin/python3 (pip 23.0.1)',
    'node A skip: test/fixture.test.mjs > outer > inner # with a hash: (no reason given)',
    'node A todo: test/fixture.test.mjs > outer > not yet: waits for the next release',
    'node A (exit 0): 1 passed, 0 failed, 3 skipped',
    '1 passed, 0 failed, 3 skipped',
  ])
})

t.test(
  'the command names each failed test, gives each run its counts and their sum last',
  async (t) => {
    t.not(failing.code, 0, 'tap failed the failing fixture')
    const cleanStatus = String(clean.code)
    const failingStatus = String(failing.code)
    const out = await summaryCli(t, [
      'node A',
      clean.log,
      cleanStatus,
      'node B',
      failing.log,
      failingStatus,
    ])
    t.equal(out.code, 1, 'exits non-zero')
    t.same(out.lines.slice(3), [
      'node A (exit 0): 1 passed, 0 failed, 3 skipped',
      'node B failed: test/fixture.test.mjs > outer > compares > one is two',
      `node B (exit ${failingStatus}): 2 passed, 1 failed, 0 skipped`,
      '3 passed, 1 failed, 3 skipped',
    ])
  },
)

t.test('a run that exits non-zero with no failed test counts one failure', async (t) => {
  const out = summarize([{ label: 'node A', output: clean.output, status: '1' }])
  t.notOk(out.ok)
  t.equal(out.lines.at(-1), '1 passed, 1 failed, 3 skipped')
})

t.test('a run that never reached tap counts one failure and says so', async (t) => {
  const out = summarize([
    { label: 'node A', output: 'npm error Missing script: "test"\n', status: '1' },
    { label: 'node B', output: '', status: '' },
  ])
  t.notOk(out.ok)
  t.same(out.lines, [
    'node A: tap printed no closing counts',
    'node A (exit 1): 0 passed, 1 failed, 0 skipped',
    'node B: tap printed no closing counts',
    'node B (exit ): 0 passed, 1 failed, 0 skipped',
    '0 passed, 2 failed, 0 skipped',
  ])
})
