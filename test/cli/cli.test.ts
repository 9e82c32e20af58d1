import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { tempDir } from '../helpers/config.ts'
import { cleanEnv, runCli } from '../helpers/cli.ts'

t.test('--help prints usage and exits 0', async (t) => {
  const res = await runCli(t, ['--help'])
  t.equal(res.code, 0)
  t.match(res.stdout, /^Usage: pullthrough <command>/)
  t.match(res.stdout, /serve/)
})

/** The commands `pullthrough --help` lists. */
async function listedCommands(t: Test): Promise<string[]> {
  const res = await runCli(t, ['--help'])
  const section = /\nCommands:\n((?: {2}\S.*\n)+)/.exec(res.stdout)?.[1] ?? ''
  return [...section.matchAll(/^ {2}(\S+)/gm)].map((m) => m[1] ?? '')
}

t.test('every command has its own --help with an example', async (t) => {
  const commands = await listedCommands(t)
  t.ok(commands.length >= 6, `found the command list: ${commands.join(' ')}`)
  for (const name of ['serve', 'stats', 'ls', 'verify', 'gc', 'sync'])
    t.ok(commands.includes(name), `lists ${name}`)
  for (const name of commands) {
    for (const args of [
      [name, '--help'],
      ['help', name],
    ]) {
      const res = await runCli(t, args)
      t.equal(res.code, 0, args.join(' '))
      t.match(res.stdout, new RegExp(`^Usage: pullthrough ${name} `), `${args.join(' ')}: usage`)
      t.match(res.stdout, /\nOptions:\n/, `${args.join(' ')}: options`)
      t.match(
        res.stdout,
        new RegExp(`\nExamples?:\n {2}pullthrough ${name}\\b`),
        `${args.join(' ')}: an example`,
      )
    }
  }
})

t.test('bad input exits 2 with one line saying why', async (t) => {
  const cases: [string[], string][] = [
    [['frobnicate'], 'unknown command "frobnicate" (commands: serve, stats'],
    [[], 'missing command'],
    [['help', 'frobnicate'], 'unknown command "frobnicate"'],
    [['stats', '--rate', '1MB'], '--rate is an option of verify, not of stats'],
    [['verify', '--dry-run'], '--dry-run is an option of gc, not of verify'],
    [['sync', '--offline'], '--offline is an option of serve, not of sync'],
    [['ls', '--colour'], 'ls has no option --colour'],
    [['ls', 'npm'], 'ls takes docker or pypi, not "npm"'],
    [['ls', '--limit', '0'], '--limit takes a whole number from 1 to 500'],
    [['gc', 'now'], 'unexpected argument "now"'],
    [['sync', 'Bad Name'], '"Bad Name" is not a sync list name'],
    [['serve', 'extra'], 'unexpected argument "extra"'],
    [['verify', '--url'], "Option '--url <value>' argument missing"],
    [['export', '--images', 'library/python:3.12'], 'export needs --out FILE'],
    [
      ['export', '--out', 'b.tar'],
      'export needs --images, --package, --requirements, --sync-list or --all',
    ],
    [
      ['export', '--requirements', '/nonexistent/requirements.txt', '--out', 'b.tar'],
      'cannot read /nonexistent/requirements.txt (ENOENT)',
    ],
    [['import'], 'import needs the bundle FILE'],
    [['import', 'a.tar', 'b.tar'], 'unexpected argument "b.tar"'],
    [['import', '--all', 'a.tar'], '--all is an option of export, not of import'],
  ]
  for (const [args, reason] of cases) {
    const res = await runCli(t, args)
    t.equal(res.code, 2, args.join(' '))
    t.match(res.stderr, /^pullthrough: [^\n]+\n$/, `${args.join(' ')}: one line`)
    t.match(res.stderr, reason, args.join(' '))
  }
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
