import { execFile } from 'node:child_process'
import { once } from 'node:events'
import { readdir, stat, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import t, { type Test } from 'tap'
import { request } from 'undici'
import { tempDir } from '../helpers/config.ts'
import { CLI, cleanEnv, exitCode, runCli, spawnNode, waitListening } from '../helpers/cli.ts'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const SLOW_CHILD = fileURLToPath(new URL('../helpers/slow-server-child.ts', import.meta.url))
const run = promisify(execFile)

/** Starts the slow-route server child in a temp dir; `chunks` of 64 KiB every 50 ms. */
async function startSlowServer(t: Test, chunks: number, configYaml?: string) {
  const dir = await tempDir(t)
  const env: NodeJS.ProcessEnv = {
    PULLTHROUGH_HOST: '127.0.0.1',
    PULLTHROUGH_PORT: '0',
    SLOW_CHUNKS: String(chunks),
    SLOW_INTERVAL_MS: '50',
  }
  if (configYaml !== undefined) {
    await writeFile(join(dir, 'config.yaml'), configYaml)
    env.PULLTHROUGH_CONFIG = join(dir, 'config.yaml')
  }
  const child = spawnNode(t, SLOW_CHILD, [], { cwd: dir, env: cleanEnv(env) })
  return { child, url: await waitListening(child) }
}

t.test('the built bin serves /healthz within 10 s with no config file and no Redis', async (t) => {
  await run('npm', ['run', '--silent', 'build'], { cwd: ROOT })
  const dir = await tempDir(t)
  const started = Date.now()
  const child = spawnNode(t, join(ROOT, 'dist/cli.js'), ['serve'], {
    cwd: dir,
    env: cleanEnv({ PULLTHROUGH_HOST: '127.0.0.1', PULLTHROUGH_PORT: '0' }),
  })
  const logged: string[] = []
  const url = await waitListening(child, logged)
  const res = await request(`${url}/healthz`)
  t.equal(res.statusCode, 200)
  await res.body.dump()
  const elapsed = Date.now() - started
  t.ok(elapsed < 10_000, `answered after ${elapsed} ms`)
  t.ok((await stat(join(dir, 'data/blobs'))).isDirectory(), 'the embedded store lives under ./data')
  t.ok((await stat(join(dir, 'data/meta'))).isDirectory())
  t.ok(
    logged.indexOf('transfer path warmed up') >= 0 &&
      logged.indexOf('transfer path warmed up') < logged.indexOf('listening'),
    'the transfer path was rehearsed before listening',
  )
  const stored = await readdir(join(dir, 'data/blobs'), { recursive: true, withFileTypes: true })
  t.same(
    stored.filter((entry) => entry.isFile()),
    [],
    'leaving no blob',
  )
  t.notOk(
    (await readdir(join(dir, 'data'))).some((name) => name.startsWith('.rehearsal-')),
    'and no rehearsal directory',
  )
  child.kill('SIGTERM')
  const code = await exitCode(child)
  t.equal(code, 0)
})

t.test(
  'SIGTERM while a response is streaming: the response completes and the process exits 0',
  async (t) => {
    const { child, url } = await startSlowServer(t, 20)
    const res = await request(`${url}/slow`)
    t.equal(res.statusCode, 200)
    const exited = exitCode(child)
    let received = 0
    let signalled = false
    for await (const chunk of res.body) {
      received += (chunk as Buffer).length
      if (!signalled) {
        signalled = true
        child.kill('SIGTERM')
      }
    }
    t.equal(received, 20 * 64 * 1024, 'the whole body arrived')
    const code = await exited
    t.equal(code, 0)
  },
)

t.test('new connections are refused once shutdown has begun', async (t) => {
  const { child, url } = await startSlowServer(t, 30)
  const res = await request(`${url}/slow`)
  const reader = res.body[Symbol.asyncIterator]()
  await reader.next()
  child.kill('SIGTERM')
  // Wait for the log line that says draining has begun, then try a fresh connection.
  await new Promise<void>((resolve) => {
    child.stdout.on('data', (d: Buffer) => {
      if (d.toString().includes('shutting down')) resolve()
    })
  })
  await t.rejects(request(`${url}/healthz`, { reset: true }), 'a new connection is not accepted')
  for (let next = await reader.next(); !next.done; next = await reader.next()) {
    // drain the in-flight response
  }
  const code = await exitCode(child)
  t.equal(code, 0)
})

t.test(
  'a response that outlasts server.shutdownTimeout is cut and the process still exits 0 in time',
  async (t) => {
    const { child, url } = await startSlowServer(t, 1000, 'server: { shutdownTimeout: 500ms }\n')
    const res = await request(`${url}/slow`)
    const reader = res.body[Symbol.asyncIterator]()
    await reader.next()
    const exited = exitCode(child)
    const signalledAt = Date.now()
    child.kill('SIGTERM')
    await t.rejects(
      (async () => {
        for (let next = await reader.next(); !next.done; next = await reader.next()) {
          // the body is cut before it completes
        }
      })(),
    )
    const code = await exited
    const elapsed = Date.now() - signalledAt
    t.equal(code, 0)
    t.ok(elapsed < 3000, `exited ${elapsed} ms after SIGTERM with a 500 ms bound`)
  },
)

t.test('a port already in use exits 1 with a clear message', async (t) => {
  const blocker = createServer()
  blocker.listen(0, '127.0.0.1')
  await once(blocker, 'listening')
  t.teardown(() => blocker.close())
  const port = (blocker.address() as { port: number }).port
  const dir = await tempDir(t)
  const res = await runCli(t, ['serve'], {
    cwd: dir,
    env: cleanEnv({ PULLTHROUGH_HOST: '127.0.0.1', PULLTHROUGH_PORT: String(port) }),
  })
  t.equal(res.code, 1)
  t.match(res.stderr, /^pullthrough: cannot start: .*EADDRINUSE/m)
})

t.test('a second process on the same embedded store refuses to start', async (t) => {
  const dir = await tempDir(t)
  const env = cleanEnv({ PULLTHROUGH_HOST: '127.0.0.1', PULLTHROUGH_PORT: '0' })
  const first = spawnNode(t, CLI, ['serve'], { cwd: dir, env })
  await waitListening(first)
  const second = await runCli(t, ['serve'], { cwd: dir, env })
  t.equal(second.code, 1)
  t.match(second.stderr, /in use by process \d+ on [^;]+; use Redis/)
  first.kill('SIGTERM')
  const code = await exitCode(first)
  t.equal(code, 0)
})

t.test('log.format: pretty writes lines for a person; auto writes JSON to a pipe', async (t) => {
  const blocker = createServer()
  blocker.listen(0, '127.0.0.1')
  await once(blocker, 'listening')
  t.teardown(() => blocker.close())
  const port = String((blocker.address() as { port: number }).port)
  const env = cleanEnv({ PULLTHROUGH_HOST: '127.0.0.1', PULLTHROUGH_PORT: port })
  const run = async (format: string) => {
    const dir = await tempDir(t)
    await writeFile(join(dir, 'config.yaml'), `log: { format: ${format} }\n`)
    // The port is taken: the server logs its start, then exits 1.
    return runCli(t, ['serve'], { cwd: dir, env })
  }
  const pretty = await run('pretty')
  t.equal(pretty.code, 1)
  const starting = pretty.stdout.split('\n').find((l) => l.includes('starting pullthrough'))
  t.ok(starting, 'the start line is there')
  t.match(starting, /INFO/)
  t.throws(() => JSON.parse(starting ?? '') as unknown, 'not JSON')
  const auto = await run('auto')
  const line = auto.stdout.split('\n').find((l) => l.includes('starting pullthrough')) ?? ''
  t.match(JSON.parse(line), { msg: 'starting pullthrough', level: 30 }, 'stdout is a pipe: JSON')
})

t.test('serve --offline starts offline; --offline on another command is refused', async (t) => {
  const dir = await tempDir(t)
  const child = spawnNode(t, CLI, ['serve', '--offline'], {
    cwd: dir,
    env: cleanEnv({ PULLTHROUGH_HOST: '127.0.0.1', PULLTHROUGH_PORT: '0' }),
  })
  const url = await waitListening(child)
  const res = await request(`${url}/-/api/v1/offline`)
  t.same(await res.body.json(), { offline: true })
  child.kill('SIGTERM')
  t.equal(await exitCode(child), 0)
  const refused = await runCli(t, ['stats', '--offline'], { cwd: dir, env: cleanEnv() })
  t.equal(refused.code, 2)
  t.match(refused.stderr, '--offline is an option of serve')
})
