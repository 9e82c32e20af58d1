/**
 * shellcheck on every shell script and yamllint on every static YAML file of
 * the repository (scripts/test-deps.sh installs both). Helm templates are Go
 * templates, not YAML: they are checked by chart.test.ts instead.
 */
import { execFile } from 'node:child_process'
import { open, readdir } from 'node:fs/promises'
import { join, relative } from 'node:path'
import { promisify } from 'node:util'
import t, { type Test } from 'tap'
import { ROOT } from './files.ts'

const run = promisify(execFile)

/** Not the project's own files, or not YAML. */
const SKIPPED = new Set([
  '.git',
  'node_modules',
  'dist',
  'data',
  '.tap',
  'coverage',
  join('helm', 'pullthrough', 'templates'),
])

async function repositoryFiles(dir = ROOT): Promise<string[]> {
  const files: string[] = []
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name)
    const rel = relative(ROOT, path)
    if (SKIPPED.has(rel)) continue
    if (entry.isDirectory()) files.push(...(await repositoryFiles(path)))
    else if (entry.isFile()) files.push(rel)
  }
  return files
}

async function firstLine(path: string): Promise<string> {
  const file = await open(join(ROOT, path), 'r')
  try {
    const buffer = Buffer.alloc(64)
    const { bytesRead } = await file.read(buffer, 0, buffer.length, 0)
    return buffer.subarray(0, bytesRead).toString('utf8').split('\n')[0] ?? ''
  } finally {
    await file.close()
  }
}

/** Runs a linter; its findings become the assertion message. */
async function lint(t: Test, command: string, args: string[], what: string): Promise<void> {
  try {
    await run(command, args, { cwd: ROOT })
    t.pass(what)
  } catch (error) {
    const { code, stdout, stderr } = error as { code?: unknown; stdout?: string; stderr?: string }
    if (code === 'ENOENT') t.fail(`${command} is not installed: run scripts/test-deps.sh`)
    else t.fail(`${what}\n${stdout ?? ''}${stderr ?? ''}`)
  }
}

t.test('shellcheck finds nothing in the shell scripts', async (t) => {
  const scripts: string[] = []
  for (const file of await repositoryFiles()) {
    if (file.endsWith('.sh') || /^#!.*\b(ba|da)?sh\b/.test(await firstLine(file)))
      scripts.push(file)
  }
  scripts.sort()
  for (const expected of ['.ci/run', 'scripts/test-deps.sh']) {
    t.ok(scripts.includes(expected), `checks ${expected}`)
  }
  await lint(t, 'shellcheck', ['--severity=style', ...scripts], scripts.join(' '))
})

t.test('yamllint finds nothing in the static YAML files', async (t) => {
  const files = (await repositoryFiles()).filter((f) => /\.ya?ml$/.test(f)).sort()
  for (const expected of [
    'config.example.yaml',
    'docker/compose.yaml',
    'helm/pullthrough/values.yaml',
    'helm/pullthrough/Chart.yaml',
  ]) {
    t.ok(files.includes(expected), `checks ${expected}`)
  }
  const config = join('test', 'deploy', 'yamllint.yaml')
  await lint(t, 'yamllint', ['--strict', '-c', config, ...files], files.join(' '))
})
