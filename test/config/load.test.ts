import { chmod, mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { ConfigError } from '../../src/config/errors.ts'
import { loadConfig } from '../../src/config/load.ts'
import { tempDir } from '../helpers/config.ts'

async function loadYaml(t: Test, yaml: string, env: NodeJS.ProcessEnv = {}) {
  const dir = await tempDir(t)
  await writeFile(join(dir, 'config.yaml'), yaml)
  return loadConfig({ cwd: dir, env })
}

async function rejection(promise: Promise<unknown>): Promise<string> {
  try {
    await promise
  } catch (error) {
    if (error instanceof ConfigError) return error.message
    throw error
  }
  throw new Error('expected the config to be rejected')
}

t.test(
  'with no config file the built-in defaults give Docker Hub and PyPI with public mirrors',
  async (t) => {
    const dir = await tempDir(t)
    const { config, file } = await loadConfig({ cwd: dir, env: {} })
    t.equal(file, undefined)
    t.equal(config.server.port, 5000)
    t.equal(config.storage.path, join(dir, 'data'))
    t.equal(config.storage.maxSize, 50 * 2 ** 30)
    t.equal(config.metadata.redis, undefined)
    const [hub] = config.docker.registries
    t.equal(hub?.name, 'docker.io')
    t.equal(hub?.default, true)
    t.same(
      hub?.upstreams.map((u) => u.url),
      ['https://registry-1.docker.io', 'https://mirror.gcr.io'],
    )
    t.equal(hub?.tagTTL, 5 * 60_000)
    const [pypi] = config.pypi.indexes
    t.same(
      pypi?.upstreams.map((u) => new URL(u.url).hostname),
      ['pypi.org', 'pypi.tuna.tsinghua.edu.cn', 'mirrors.aliyun.com', 'mirrors.ustc.edu.cn'],
    )
    t.same(pypi?.fileHosts, ['https://files.pythonhosted.org'])
    t.equal(pypi?.indexTTL, 10 * 60_000)
  },
)

t.test('the result is deeply frozen', async (t) => {
  const dir = await tempDir(t)
  const { config } = await loadConfig({ cwd: dir, env: {} })
  t.ok(Object.isFrozen(config))
  t.ok(Object.isFrozen(config.docker.registries[0]?.upstreams[0]))
  t.throws(() => {
    ;(config.server as { port: number }).port = 1
  }, TypeError)
})

t.test('reads ./config.yaml, parses units and keeps unspecified defaults', async (t) => {
  const { config, file } = await loadYaml(
    t,
    `
storage: { maxSize: 512MiB, verifyOnRead: false }
docker:
  registries:
    - name: ghcr.io
      upstreams: [{ url: "https://ghcr.io" }]
      tagTTL: 30s
`,
  )
  t.match(file, /config\.yaml$/)
  t.equal(config.storage.maxSize, 512 * 2 ** 20)
  t.equal(config.storage.verifyOnRead, false)
  t.equal(config.docker.registries[0]?.tagTTL, 30_000)
  t.equal(config.docker.registries[0]?.timeouts.bodyIdle, 30_000)
  t.equal(config.pypi.indexes[0]?.name, 'pypi', 'an absent section keeps its defaults')
})

t.test('storage.verifyOnRead takes true, false or "changed"', async (t) => {
  const { config } = await loadYaml(t, 'storage: { verifyOnRead: changed }\n')
  t.equal(config.storage.verifyOnRead, 'changed')
  t.equal((await loadYaml(t, '')).config.storage.verifyOnRead, true, 'every read by default')
  const dir = await tempDir(t)
  await writeFile(join(dir, 'config.yaml'), 'storage: { verifyOnRead: sometimes }\n')
  t.equal(
    await rejection(loadConfig({ cwd: dir, env: {} })),
    'storage.verifyOnRead: must be true, false or "changed"',
  )
})

t.test('an empty file means all defaults', async (t) => {
  const { config } = await loadYaml(t, '# nothing here\n')
  t.equal(config.server.port, 5000)
})

t.test('environment variables override single keys', async (t) => {
  const { config } = await loadYaml(t, 'server: { port: 6000 }\n', {
    PULLTHROUGH_HOST: '127.0.0.1',
    PULLTHROUGH_PORT: '7000',
    PULLTHROUGH_STORAGE_PATH: '/var/cache/pt',
    PULLTHROUGH_REDIS_URL: 'redis://127.0.0.1:6390/2',
    PULLTHROUGH_LOG_LEVEL: 'debug',
  })
  t.equal(config.server.host, '127.0.0.1')
  t.equal(config.server.port, 7000)
  t.equal(config.storage.path, '/var/cache/pt')
  t.equal(config.metadata.redis?.url, 'redis://127.0.0.1:6390/2')
  t.equal(config.metadata.redis?.commandTimeout, 2000)
  t.equal(config.log.level, 'debug')
})

t.test('PULLTHROUGH_CONFIG names the file and an explicit --config wins over it', async (t) => {
  const dir = await tempDir(t)
  await writeFile(join(dir, 'a.yaml'), 'server: { port: 1111 }\n')
  await writeFile(join(dir, 'b.yaml'), 'server: { port: 2222 }\n')
  const fromEnv = await loadConfig({ cwd: dir, env: { PULLTHROUGH_CONFIG: 'a.yaml' } })
  t.equal(fromEnv.config.server.port, 1111)
  const explicit = await loadConfig({
    cwd: dir,
    file: 'b.yaml',
    env: { PULLTHROUGH_CONFIG: 'a.yaml' },
  })
  t.equal(explicit.config.server.port, 2222)
})

t.test(
  'passwords come from the config, a file or the environment and are listed as secrets',
  async (t) => {
    const dir = await tempDir(t)
    const secretFile = join(dir, 'secret')
    await writeFile(secretFile, 'from-the-file\n')
    await writeFile(
      join(dir, 'config.yaml'),
      `
docker:
  registries:
    - name: docker.io
      upstreams:
        - { url: "https://a.example", username: u, password: inline-secret }
        - { url: "https://b.example", username: u, passwordFile: "${secretFile}" }
        - { url: "https://c.example", username: u, passwordEnv: HUB_TOKEN }
metadata: { redis: { url: "redis://:redis-pass@127.0.0.1:6379/0" } }
`,
    )
    const { config, secrets } = await loadConfig({ cwd: dir, env: { HUB_TOKEN: 'from-the-env' } })
    t.same(
      config.docker.registries[0]?.upstreams.map((u) => u.password),
      ['inline-secret', 'from-the-file', 'from-the-env'],
    )
    // Each password, and the Basic form it travels in (base64 of `user:password`, unpadded).
    const basic = (pw: string) => Buffer.from(`u:${pw}`).toString('base64').replace(/=+$/, '')
    t.same(
      [...secrets].sort(),
      [
        'from-the-env',
        'from-the-file',
        'inline-secret',
        'redis-pass',
        basic('inline-secret'),
        basic('from-the-file'),
        basic('from-the-env'),
      ].sort(),
    )
  },
)

t.test('invalid configurations are rejected with the key path and the problem', async (t) => {
  const cases: [string, string, RegExp][] = [
    [
      'non-http upstream URL',
      'docker: { registries: [{ name: docker.io, upstreams: [{ url: "https://a.example" }, { url: "ftp://b.example" }] }] }',
      /^docker\.registries\[0\]\.upstreams\[1\]\.url: must be an http\(s\) URL$/,
    ],
    ['unknown key', 'server: { prot: 5000 }', /^server\.prot: unknown key$/],
    ['unknown top-level section', 'registries: []', /^registries: unknown key$/],
    [
      'wrong type',
      'server: { port: "five thousand" }',
      /^server\.port: expected number, got string/,
    ],
    ['port out of range', 'server: { port: 70000 }', /^server\.port: must be at most 65535$/],
    ['bad size', 'storage: { maxSize: lots }', /^storage\.maxSize: must be a size like/],
    [
      'bad duration',
      'docker: { registries: [{ name: docker.io, upstreams: [{ url: "https://a.example" }], tagTTL: soon }] }',
      /^docker\.registries\[0\]\.tagTTL: must be a duration/,
    ],
    [
      'no upstreams',
      'pypi: { indexes: [{ name: pypi, upstreams: [] }] }',
      /^pypi\.indexes\[0\]\.upstreams: needs at least one upstream$/,
    ],
    ['bad log level', 'log: { level: loud }', /^log\.level: must be one of "fatal"/],
    [
      'two defaults',
      'docker: { registries: [{ name: a.io, default: true, upstreams: [{ url: "http://a" }] }, { name: b.io, default: true, upstreams: [{ url: "http://b" }] }] }',
      /^docker\.registries\[1\]\.default: only one entry can be the default$/,
    ],
    [
      'duplicate names',
      'pypi: { indexes: [{ name: p, upstreams: [{ url: "http://a" }] }, { name: p, upstreams: [{ url: "http://b" }] }] }',
      /^pypi\.indexes\[1\]\.name: duplicate name "p"$/,
    ],
    [
      'fileHosts must be origins',
      'pypi: { indexes: [{ name: p, upstreams: [{ url: "http://a" }], fileHosts: [files.pythonhosted.org] }] }',
      /^pypi\.indexes\[0\]\.fileHosts\[0\]: must be an origin/,
    ],
    [
      'password without username',
      'docker: { registries: [{ name: a.io, upstreams: [{ url: "http://a", password: p }] }] }',
      /^docker\.registries\[0\]\.upstreams\[0\]\.username: is required with password$/,
    ],
    [
      'credentials in the URL',
      'docker: { registries: [{ name: a.io, upstreams: [{ url: "https://u:p@a.example" }] }] }',
      /^docker\.registries\[0\]\.upstreams\[0\]\.url: must not contain credentials/,
    ],
    [
      'invalid registry name',
      'docker: { registries: [{ name: "Docker Hub", upstreams: [{ url: "http://a" }] }] }',
      /^docker\.registries\[0\]\.name: must be a registry host name/,
    ],
    [
      'non-redis URL',
      'metadata: { redis: { url: "http://127.0.0.1:6379" } }',
      /^metadata\.redis\.url: must be a redis:\/\/ or rediss:\/\/ URL$/,
    ],
    ['YAML syntax error', 'server: [1', /config\.yaml: line \d+, column \d+: /],
    ['not a mapping', '- a\n- b\n', /config\.yaml: the top level must be a mapping/],
    [
      'duplicate YAML keys',
      'server: { port: 1 }\nserver: { port: 2 }\n',
      /config\.yaml: line \d+, column \d+: Map keys must be unique/,
    ],
  ]
  for (const [name, yaml, expected] of cases) {
    t.match(await rejection(loadYaml(t, yaml)), expected, name)
  }
})

t.test('an invalid environment override names the variable', async (t) => {
  const message = await rejection(loadYaml(t, '', { PULLTHROUGH_PORT: 'http' }))
  t.match(message, /^server\.port \(from PULLTHROUGH_PORT\): expected number/)
})

t.test('a missing or unreadable file is a clear error', async (t) => {
  const dir = await tempDir(t)
  t.match(
    await rejection(loadConfig({ cwd: dir, file: 'nope.yaml', env: {} })),
    /nope\.yaml: cannot read config file \(ENOENT\)/,
  )
  await mkdir(join(dir, 'adir.yaml'))
  t.match(
    await rejection(loadConfig({ cwd: dir, file: 'adir.yaml', env: {} })),
    /cannot read config file \(EISDIR\)/,
  )
})

t.test('secret sources that cannot be read are named', async (t) => {
  const dir = await tempDir(t)
  const empty = join(dir, 'empty')
  await writeFile(empty, '\n')
  await chmod(empty, 0o600)
  const base = 'docker: { registries: [{ name: a.io, upstreams: [{ url: "http://a", username: u, '
  t.match(
    await rejection(loadYaml(t, `${base}passwordFile: "${join(dir, 'missing')}" }] }] }`)),
    /^docker\.registries\[0\]\.upstreams\[0\]\.passwordFile: cannot read the file \(ENOENT\)$/,
  )
  t.match(
    await rejection(loadYaml(t, `${base}passwordFile: "${empty}" }] }] }`)),
    /passwordFile: the file is empty$/,
  )
  t.match(
    await rejection(loadYaml(t, `${base}passwordEnv: NOT_SET_ANYWHERE }] }] }`)),
    /passwordEnv: environment variable NOT_SET_ANYWHERE is not set$/,
  )
})

t.test('PULLTHROUGH_OFFLINE takes the usual spellings of a flag and refuses others', async (t) => {
  for (const [value, offline] of [
    ['true', true],
    ['1', true],
    ['YES', true],
    ['on', true],
    ['false', false],
    ['0', false],
    ['no', false],
  ] as const) {
    const { config } = await loadYaml(t, '', { PULLTHROUGH_OFFLINE: value })
    t.equal(config.offline, offline, `PULLTHROUGH_OFFLINE=${value}`)
  }
  t.equal((await loadYaml(t, '')).config.offline, false, 'online by default')
  await t.rejects(loadYaml(t, '', { PULLTHROUGH_OFFLINE: 'maybe' }), {
    message: /offline \(from PULLTHROUGH_OFFLINE\): expected boolean/,
  })
})

t.test('cluster: a secret from one source, a plain advertise URL, and Redis', async (t) => {
  const redis = 'metadata: { redis: { url: "redis://127.0.0.1:6379" } }\n'
  const secret = 's'.repeat(40)
  const base = `cluster: { port: 5001, advertise: "http://10.0.0.7:5001"`
  const dir = await tempDir(t)
  const file = join(dir, 'secret')
  await writeFile(file, `${secret}\n`)
  const loaded = await loadYaml(t, `${redis}${base}, secretFile: "${file}" }\n`)
  t.equal(loaded.config.cluster?.secret, secret, 'read from the file, without its newline')
  t.ok(loaded.secrets.includes(secret), 'and kept out of the logs')
  const fromEnv = await loadYaml(t, `${redis}${base}, secretEnv: PT_SECRET }\n`, {
    PT_SECRET: secret,
    PULLTHROUGH_CLUSTER_ADVERTISE: 'http://10.1.2.3:5001',
  })
  t.equal(fromEnv.config.cluster?.secret, secret)
  t.equal(
    fromEnv.config.cluster?.advertise,
    'http://10.1.2.3:5001',
    'the pod IP from the environment',
  )
  const cases: [string, RegExp][] = [
    [`${base}, secret: "${secret}" }`, /^cluster: needs metadata\.redis/],
    [`${redis}${base} }`, /^cluster\.secret: set one of secret, secretFile, secretEnv$/],
    [`${redis}${base}, secret: short }`, /^cluster\.secret: .*32/],
    [
      `${redis}${base}, secret: "${secret}", secretEnv: X }`,
      /^cluster\.secretEnv: set only one of/,
    ],
    [
      `${redis}cluster: { port: 5001, advertise: "http://u:p@10.0.0.7:5001/x", secret: "${secret}" }`,
      /^cluster\.advertise: must be only scheme, host and port$/,
    ],
    [
      `${redis}cluster: { port: 5001, advertise: "10.0.0.7:5001", secret: "${secret}" }`,
      /^cluster\.advertise: must be an http\(s\) URL/,
    ],
    [
      `${redis}${base}, secretEnv: NOT_SET_ANYWHERE }`,
      /secretEnv: environment variable NOT_SET_ANYWHERE is not set$/,
    ],
  ]
  for (const [yaml, expected] of cases)
    t.match(await rejection(loadYaml(t, `${yaml}\n`)), expected, yaml)
})

t.test('cluster: advertise and the secret may come from the environment alone', async (t) => {
  const redis = 'metadata: { redis: { url: "redis://127.0.0.1:6379" } }\n'
  const secret = 'e'.repeat(40)
  const loaded = await loadYaml(t, `${redis}cluster: { port: 5001 }\n`, {
    PULLTHROUGH_CLUSTER_ADVERTISE: 'http://10.1.2.3:5001',
    PULLTHROUGH_CLUSTER_SECRET: secret,
  })
  t.equal(loaded.config.cluster?.advertise, 'http://10.1.2.3:5001')
  t.ok(loaded.secrets.includes(secret), 'the secret is kept out of the logs')
  t.match(
    await rejection(loadYaml(t, `${redis}cluster: { port: 5001, secret: "${secret}" }\n`)),
    /^cluster\.advertise: set it \(or PULLTHROUGH_CLUSTER_ADVERTISE\)/,
  )
})

t.test('storage.s3 takes a bucket and fills in the rest', async (t) => {
  const { config } = await loadYaml(t, 'storage: { s3: { bucket: blobs } }\n')
  t.same(config.storage.s3, {
    bucket: 'blobs',
    region: 'us-east-1',
    prefix: '',
    pathStyle: false,
    partSize: 16 * 2 ** 20,
    redirect: false,
  })
})

t.test('storage.s3 reads every key; a prefix gets its trailing slash', async (t) => {
  const { config, secrets } = await loadYaml(
    t,
    `storage:
  s3:
    bucket: blobs
    endpoint: http://127.0.0.1:9000
    region: eu-west-1
    prefix: pullthrough/cache
    pathStyle: true
    credentials: { accessKeyId: AKID, secretAccessKey: s3-secret-value }
    partSize: 64MiB
    redirect: { expires: 2m }
`,
  )
  t.same(config.storage.s3, {
    bucket: 'blobs',
    endpoint: 'http://127.0.0.1:9000',
    region: 'eu-west-1',
    prefix: 'pullthrough/cache/',
    pathStyle: true,
    credentials: { accessKeyId: 'AKID', secretAccessKey: 's3-secret-value' },
    partSize: 64 * 2 ** 20,
    redirect: { expires: 120_000 },
  })
  t.ok(secrets.includes('s3-secret-value'), 'the secret key is scrubbed from logs')
})

t.test('bad storage.s3 settings name their key', async (t) => {
  const bad = async (yaml: string) => rejection(loadYaml(t, `storage: { s3: ${yaml} }\n`))
  t.match(await bad('{}'), /storage\.s3\.bucket/)
  t.match(
    await bad('{ bucket: b, partSize: 1MiB }'),
    /storage\.s3\.partSize.*between 5MiB and 5GiB/,
  )
  t.match(await bad('{ bucket: b, endpoint: ftp://x }'), /storage\.s3\.endpoint.*http\(s\) URL/)
  t.match(await bad('{ bucket: b, prefix: /abs }'), /storage\.s3\.prefix/)
  t.match(await bad('{ bucket: b, redirect: { expires: 30d } }'), /storage\.s3\.redirect/)
  t.match(await bad('{ bucket: b, credentials: { accessKeyId: x } }'), /secretAccessKey/)
  t.match(await bad('{ bucket: b, forcePathStyle: true }'), /forcePathStyle/)
})
