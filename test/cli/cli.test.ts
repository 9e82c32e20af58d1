import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { tempDir } from '../helpers/config.ts'
import { cleanEnv, runCli } from '../helpers/cli.ts'

t.test('--help prints usage and exits 0', async (t) => {
  const res = await runCli(t, ['--help'])
  t.equal(res.code, 0)
  t.match(res.stdout, /^Usage: pullthrough <command>/)
  t.match(res.stdout, /serve/)
})

t.test('--version prints the package version', async (t) => {
  const pkg = JSON.parse(
    await readFile(new URL('../../package.json', import.meta.url), 'utf8'),
  ) as { version: string }
  const res = await runCli(t, ['--version'])
  t.equal(res.code, 0)
  t.equal(res.stdout, `${pkg.version}\n`)
})

t.test('an unknown command or option exits 2 with usage', async (t) => {
  for (const args of [['frobnicate'], ['serve', '--bogus'], [], ['serve', 'extra']]) {
    const res = await runCli(t, args)
    t.equal(res.code, 2, args.join(' '))
    t.match(res.stderr, /^pullthrough: /)
  }
})

t.test('an invalid config makes serve exit 2 with one line naming the key path', async (t) => {
  const dir = await tempDir(t)
  const cases: [string, string][] = [
    [
      'docker: { registries: [{ name: docker.io, upstreams: [{ url: "https://a.example" }, { url: "ftp://b" }] }] }',
      'docker.registries[0].upstreams[1].url: must be an http(s) URL',
    ],
    ['server: { prot: 1 }', 'server.prot: unknown key'],
    ['server: { port: "x" }', 'server.port: expected number, got string "x"'],
    ['storage: { maxSize: 12 parsecs }', 'storage.maxSize: must be a size like 512MiB or 50GiB'],
    [
      'pypi: { indexes: [{ name: pypi, upstreams: [] }] }',
      'pypi.indexes[0].upstreams: needs at least one upstream',
    ],
    [
      'log: { level: chatty }',
      'log.level: must be one of "fatal", "error", "warn", "info", "debug", "trace", "silent"',
    ],
    [
      'metadata: { redis: { url: "localhost:6379" } }',
      'metadata.redis.url: must be a redis:// or rediss:// URL',
    ],
    [
      'docker: { registries: [{ name: docker.io, upstreams: [{ url: "https://a" }], tagTTL: forever }] }',
      'docker.registries[0].tagTTL: must be a duration like 250ms, 30s, 5m or 1h',
    ],
  ]
  for (const [i, [yaml, message]] of cases.entries()) {
    const file = join(dir, `bad-${i}.yaml`)
    await writeFile(file, yaml)
    const res = await runCli(t, ['serve', '--config', file])
    t.equal(res.code, 2, message)
    t.equal(res.stderr, `pullthrough: invalid config: ${message}\n`, message)
  }
})

t.test('a config file that does not exist exits 2', async (t) => {
  const res = await runCli(t, ['serve', '-c', '/nonexistent/pullthrough.yaml'])
  t.equal(res.code, 2)
  t.match(
    res.stderr,
    /^pullthrough: invalid config: \/nonexistent\/pullthrough\.yaml: cannot read config file \(ENOENT\)\n$/,
  )
})

t.test('an invalid environment override exits 2 naming the variable', async (t) => {
  const dir = await tempDir(t)
  const res = await runCli(t, ['serve'], {
    cwd: dir,
    env: cleanEnv({ PULLTHROUGH_LOG_LEVEL: 'loud' }),
  })
  t.equal(res.code, 2)
  t.match(res.stderr, /log\.level \(from PULLTHROUGH_LOG_LEVEL\): must be one of/)
})
