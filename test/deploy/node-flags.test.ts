/**
 * The server runs with `--max-semi-space-size=16` however it is started (the
 * `pullthrough` bin's shebang, `npm start`, the container image, and the
 * benchmarks, which run it as `npm start` does): Node 24 otherwise grows V8's
 * young generation to 128 MB, which alone put the server past 200 MB of RSS
 * (bench/RESULTS.md, 2026-12-04 "late night").
 */
import { execFile } from 'node:child_process'
import { chmod, readFile, writeFile } from 'node:fs/promises'
import { delimiter, dirname, join } from 'node:path'
import { promisify } from 'node:util'
import t from 'tap'
import { SERVE_NODE_FLAGS } from '../../bench/shared.ts'
import { tempDir } from '../helpers/config.ts'
import { ROOT } from './files.ts'

const FLAGS = ['--max-semi-space-size=16']
/** Two semi-spaces of 16 MiB: Node 20's default, and the cap the flag sets on Node 24. */
const MAX_NEW_SPACE_BYTES = 32 * 2 ** 20

async function shebang(): Promise<string> {
  const source = await readFile(join(ROOT, 'src', 'cli.ts'), 'utf8')
  return source.slice(0, source.indexOf('\n'))
}

t.test('every way of starting the server passes the same node flags', async (t) => {
  const line = await shebang()
  t.match(line, /^#!\/usr\/bin\/env -S node /, 'the bin runs node through env -S')
  t.same(line.split(' ').slice(3), FLAGS, 'the bin')

  const pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as {
    scripts: Record<string, string>
  }
  const start = /node (.*) dist\/cli\.js serve$/.exec(pkg.scripts.start ?? '')
  t.same(start?.[1]?.split(' '), FLAGS, 'npm start')

  const dockerfile = await readFile(join(ROOT, 'docker', 'Dockerfile'), 'utf8')
  const entrypoint = /^ENTRYPOINT (.*)$/m.exec(dockerfile)?.[1]
  const argv = JSON.parse(entrypoint ?? '[]') as string[]
  t.same(argv, ['node', ...FLAGS, '/app/dist/cli.js'], 'the container image')

  t.same(SERVE_NODE_FLAGS, FLAGS, 'the benchmarks')
})

t.test("the bin's shebang caps the young generation on this node", async (t) => {
  // A script with the bin's first line, run as an executable: env finds the node running
  // this test first on PATH, and a young generation that could grow past the cap does.
  const dir = await tempDir(t)
  const script = join(dir, 'young-generation.js')
  await writeFile(
    script,
    `${await shebang()}
const v8 = require('node:v8')
let kept = []
for (let i = 0; i < 3e6; i++) {
  kept.push({ i, s: 'x' + i })
  if (kept.length > 2e5) kept = []
}
const space = v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space')
process.stdout.write(String(space.space_size))
`,
  )
  await chmod(script, 0o755)
  const env = {
    ...process.env,
    PATH: `${dirname(process.execPath)}${delimiter}${process.env.PATH ?? ''}`,
  }
  const { stdout } = await promisify(execFile)(script, [], { env, timeout: 60_000 })
  const bytes = Number(stdout)
  t.ok(bytes > 0, `new space reported: ${stdout}`)
  t.ok(bytes <= MAX_NEW_SPACE_BYTES, `new space ${bytes} bytes, at most ${MAX_NEW_SPACE_BYTES}`)
})
