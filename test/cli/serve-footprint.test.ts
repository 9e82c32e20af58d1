/**
 * What `serve` keeps in memory: the libraries of features a config does not
 * use are not loaded (ioredis without Redis, pino-pretty without a terminal,
 * the progress bars of the client commands, the tar code of bundles). Each
 * cost the server's resident memory for nothing (#13 measured 8-15 MB of
 * RSS on Node 24 for them). The same check with Redis configured shows
 * that it sees a library that is loaded.
 */
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t, { type Test } from 'tap'
import { CLI, cleanEnv, waitListening } from '../helpers/cli.ts'
import { tempDir } from '../helpers/config.ts'
import { closedPort } from '../helpers/fake-upstream.ts'

const TSX = import.meta.resolve('tsx')
/** Writes, at exit, the packages whose CommonJS modules the process loaded. */
const RECORDER = fileURLToPath(new URL('../helpers/loaded-packages.ts', import.meta.url))
const OPTIONAL = ['ioredis', 'pino-pretty', 'cli-progress', 'tar-stream']

async function packagesLoaded(t: Test, extraYaml: string): Promise<Set<string>> {
  const dir = await tempDir(t)
  const config = join(dir, 'config.yaml')
  const out = join(dir, 'loaded.json')
  await writeFile(
    config,
    `server: { host: 127.0.0.1, port: 0 }\nstorage: { path: ${dir}/data }\nlog: { format: json }\n${extraYaml}`,
  )
  const child = spawn(
    process.execPath,
    ['--import', TSX, '--import', RECORDER, CLI, 'serve', '--config', config],
    { env: cleanEnv({ LOADED_PACKAGES_FILE: out }), stdio: 'pipe' },
  )
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  })
  await waitListening(child)
  child.kill('SIGTERM')
  await once(child, 'exit')
  return new Set(JSON.parse(await readFile(out, 'utf8')) as string[])
}

t.test('serve with the embedded store loads no library it does not use', async (t) => {
  const loaded = await packagesLoaded(t, '')
  t.ok(loaded.has('fastify'), 'the recorder sees what serve loads')
  t.same(
    OPTIONAL.filter((name) => loaded.has(name)),
    [],
    'no ioredis, pino-pretty, cli-progress or tar-stream',
  )
})

t.test('serve with Redis configured loads ioredis', async (t) => {
  const port = await closedPort()
  const loaded = await packagesLoaded(
    t,
    `metadata: { redis: { url: "redis://127.0.0.1:${port}/0", connectTimeout: 200ms } }\n`,
  )
  t.ok(loaded.has('ioredis'), 'ioredis is loaded')
})
