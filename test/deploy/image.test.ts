/**
 * The container image, compose.yaml and the chart agree with the code and with
 * each other: the port the server listens on, the paths it answers, the image
 * the Dockerfile builds, the Redis the suite runs against, the user, the data
 * volume and the environment variables the server reads. No container engine
 * runs here; these read the files and ask the real app.
 */
import { execFile } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import t from 'tap'
import { ENV_OVERRIDES, loadConfig } from '../../src/config/load.ts'
import { configSchema } from '../../src/config/schema.ts'
import { parseDuration, parseSize } from '../../src/config/units.ts'
import { startApp } from '../helpers/app.ts'
import {
  at,
  isTree,
  readDockerfile,
  readTemplates,
  readTree,
  readYaml,
  ROOT,
  type Instruction,
  type Tree,
} from './files.ts'

const run = promisify(execFile)

interface PackageJson {
  version: string
  bin: Record<string, string>
  engines: { node: string }
  scripts: Record<string, string>
}

async function packageJson(): Promise<PackageJson> {
  return JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as PackageJson
}

function only(instructions: Instruction[], keyword: string): Instruction[] {
  return instructions.filter((i) => i.keyword === keyword)
}

function lastArgs(instructions: Instruction[], keyword: string): string {
  return only(instructions, keyword).at(-1)?.args ?? ''
}

/** The final stage: instructions after the last FROM. */
async function runtimeStage(): Promise<Instruction[]> {
  const all = await readDockerfile()
  const lastFrom = all.map((i) => i.keyword).lastIndexOf('FROM')
  return all.slice(lastFrom)
}

async function compose(): Promise<Tree> {
  return readTree('docker/compose.yaml')
}

function service(file: Tree, name: string): Tree {
  const value = at(file, `services.${name}`)
  if (!isTree(value)) throw new Error(`compose.yaml has no service ${name}`)
  return value
}

const DEFAULT_PORT = configSchema.parse({}).server.port

t.test('one port everywhere: the server default, the image, compose and the chart', async (t) => {
  t.equal(DEFAULT_PORT, 5000)
  const stage = await runtimeStage()
  t.equal(lastArgs(stage, 'EXPOSE'), String(DEFAULT_PORT), 'Dockerfile EXPOSE')
  t.match(lastArgs(stage, 'HEALTHCHECK'), `process.env.PULLTHROUGH_PORT || '${DEFAULT_PORT}'`)

  const file = await compose()
  const published = service(file, 'pullthrough').ports as string[]
  t.same(published, [`${DEFAULT_PORT}:${DEFAULT_PORT}`], 'compose publishes the server port')
  t.same(Object.keys(file.services as Tree).sort(), ['pullthrough', 'redis'])
  t.notOk(service(file, 'redis').ports, 'compose does not publish Redis')
  t.equal(at(await readTree('docker/config.yaml'), 'server.port'), DEFAULT_PORT)

  const values = await readTree('helm/pullthrough/values.yaml')
  t.equal(at(values, 'config.server.port'), DEFAULT_PORT, 'chart config.server.port')
  t.equal(at(values, 'service.port'), DEFAULT_PORT, 'chart service.port')
  const helpers = (await readTemplates()).get('_helpers.tpl') ?? ''
  t.match(helpers, `dig "server" "port" ${DEFAULT_PORT} .Values.config`, 'chart fallback port')
})

t.test('Redis listens on its default port in compose and the chart', async (t) => {
  const url = String(at(await readTree('docker/config.yaml'), 'metadata.redis.url'))
  t.equal(new URL(url).port, '6379')
  t.equal(new URL(url).hostname, 'redis', 'the compose service name')
  const redis = (await readTemplates()).get('redis.yaml') ?? ''
  t.match(redis, /port: 6379\n/)
  t.match(redis, /containerPort: 6379\n/)
  t.match(
    (await readTemplates()).get('deployment.yaml') ?? '',
    /\{\{ include "pullthrough\.redisName" \. \}\}:6379\/0"/,
    'the server connects to the chart Redis on that port',
  )
})

t.test('the probe, health check and scrape paths are answered by the server', async (t) => {
  const templates = await readTemplates()
  const paths = new Set<string>()
  for (const m of (templates.get('deployment.yaml') ?? '').matchAll(/path: (\/\S+)/g)) {
    paths.add(m[1] ?? '')
  }
  for (const m of (templates.get('servicemonitor.yaml') ?? '').matchAll(/path: (\/\S+)/g)) {
    paths.add(m[1] ?? '')
  }
  for (const m of (templates.get('tests/test-connection.yaml') ?? '').matchAll(/'(\/[\w/]*)'/g)) {
    paths.add(m[1] ?? '')
  }
  const healthcheck = /127\.0\.0\.1:' \+ .+? \+ '(\/\w+)'/.exec(
    lastArgs(await runtimeStage(), 'HEALTHCHECK'),
  )
  paths.add(healthcheck?.[1] ?? 'no HEALTHCHECK path')
  t.same([...paths].sort(), ['/healthz', '/metrics', '/readyz', '/v2/'])

  const { url } = await startApp(t)
  for (const path of paths) {
    const res = await fetch(`${url}${path}`)
    t.equal(res.status, 200, `GET ${path}`)
    await res.arrayBuffer()
  }
})

t.test('compose and the chart run the image the Dockerfile builds, at this version', async (t) => {
  const pkg = await packageJson()
  const pullthrough = service(await compose(), 'pullthrough')
  t.same(pullthrough.build, { context: '..', dockerfile: 'docker/Dockerfile' })
  t.equal(pullthrough.image, `pullthrough:${pkg.version}`)

  const chart = await readTree('helm/pullthrough/Chart.yaml')
  t.equal(chart.appVersion, pkg.version, 'Chart.yaml appVersion')
  const values = await readTree('helm/pullthrough/values.yaml')
  t.equal(at(values, 'image.repository'), 'pullthrough')
  t.equal(at(values, 'image.tag'), '', 'the tag defaults to appVersion')
  const readme = await readFile(join(ROOT, 'docker', 'README.md'), 'utf8')
  t.match(readme, `docker build -f docker/Dockerfile -t pullthrough:${pkg.version} .`)
  t.match(await readFile(join(ROOT, 'docker', 'Dockerfile'), 'utf8'), `pullthrough:${pkg.version}`)

  // Every image a template names is the chart's own image or its Redis image.
  for (const [name, text] of await readTemplates()) {
    for (const m of text.matchAll(/^\s*image: (.+)$/gm)) {
      t.match(
        m[1],
        /^(\{\{ include "pullthrough\.image" \. \| quote \}\}|"\{\{ \$redis\.image\.repository \}\}:\{\{ \$redis\.image\.tag \}\}")$/,
        `${name}: image ${m[1] ?? ''}`,
      )
    }
  }
})

t.test('compose and the chart pin the same Redis, of the major the suite runs', async (t) => {
  const composed = String(service(await compose(), 'redis').image)
  const values = await readTree('helm/pullthrough/values.yaml')
  const charted = `${String(at(values, 'redis.deploy.image.repository'))}:${String(at(values, 'redis.deploy.image.tag'))}`
  t.equal(charted, composed)
  const tagMajor = /^redis:(\d+)\./.exec(composed)?.[1]
  // The Redis the metadata-store tests start (scripts/test-deps.sh installs it).
  const { stdout } = await run('redis-server', ['--version'])
  const testedMajor = /v=(\d+)\./.exec(stdout)?.[1]
  t.ok(testedMajor, `redis-server --version: ${stdout.trim()}`)
  t.equal(tagMajor, testedMajor, `${composed} is Redis ${testedMajor ?? '?'}, as tested`)
})

/**
 * Whether an `engines` range made of `^x.y.z` and `>=x.y.z` parts joined by
 * `||` (the forms package.json uses) accepts Node `[major, minor, patch]`.
 */
function enginesAccept(range: string, version: readonly [number, number, number]): boolean {
  return range.split('||').some((part) => {
    const m = /^(\^|>=)(\d+)(?:\.(\d+))?(?:\.(\d+))?$/.exec(part.trim())
    if (!m) throw new Error(`engines: cannot read ${part.trim()}`)
    const floor = [Number(m[2]), Number(m[3] ?? 0), Number(m[4] ?? 0)] as const
    const atLeast =
      version[0] !== floor[0]
        ? version[0] > floor[0]
        : version[1] !== floor[1]
          ? version[1] > floor[1]
          : version[2] >= floor[2]
    return atLeast && (m[1] === '>=' || version[0] === floor[0])
  })
}

function nodeVersion(text: string): [number, number, number] {
  const m = /^v?(\d+)\.(\d+)\.(\d+)$/.exec(text.trim())
  if (!m) throw new Error(`not a Node version: ${text}`)
  return [Number(m[1]), Number(m[2]), Number(m[3])]
}

t.test(
  'engines accepts Node 20 from 20.18.1, 22 LTS and 24 on, not the lines between',
  async (t) => {
    const range = (await packageJson()).engines.node
    t.ok(enginesAccept(range, [24, 0, 0]), `${range} accepts Node 24`)
    t.ok(enginesAccept(range, [26, 1, 0]), 'and later lines')
    t.ok(enginesAccept(range, [22, 11, 0]), 'Node 22 LTS')
    t.ok(enginesAccept(range, [20, 18, 1]), 'Node 20 from the undici 7 minimum')
    t.notOk(enginesAccept(range, [20, 18, 0]), 'not older 20s (undici 7 needs 20.18.1)')
    t.notOk(enginesAccept(range, [21, 7, 0]), 'not odd, short-lived lines between them')
    t.notOk(enginesAccept(range, [23, 0, 0]), 'not 23')
    t.notOk(enginesAccept(range, [18, 20, 0]), 'not 18')
  },
)

t.test(
  'the image builds the CLI the package declares and runs it on the Node that CI tests',
  async (t) => {
    const pkg = await packageJson()
    const all = await readDockerfile()
    t.equal(pkg.bin.pullthrough, 'dist/cli.js')
    t.ok(
      only(all, 'RUN').some((i) => i.args.startsWith('npm run build')),
      'runs npm run build',
    )
    t.ok(pkg.scripts.build, 'package.json has a build script')
    const stage = await runtimeStage()
    // node's flags: test/deploy/node-flags.test.ts
    t.equal(
      lastArgs(stage, 'ENTRYPOINT'),
      `["node", "--max-semi-space-size=16", "/app/${pkg.bin.pullthrough}"]`,
    )
    t.equal(lastArgs(stage, 'CMD'), '["serve"]')
    t.equal(lastArgs(stage, 'STOPSIGNAL'), 'SIGTERM')

    const base = /^ARG NODE_IMAGE=node:(\d+)-bookworm-slim$/m.exec(
      await readFile(join(ROOT, 'docker', 'Dockerfile'), 'utf8'),
    )
    const major = Number(base?.[1])
    t.equal(major, 24, 'a Node 24 base image')
    t.ok(major % 2 === 0, 'an even (LTS) Node line')
    t.ok(enginesAccept(pkg.engines.node, [major, 0, 0]), `engines ${pkg.engines.node} accept it`)
    // .ci/run runs the whole suite on the Node that scripts/fetch-node.sh pins.
    const pinned = /^NODE_VERSION=(\S+)$/m.exec(
      await readFile(join(ROOT, 'scripts', 'fetch-node.sh'), 'utf8'),
    )
    const tested = nodeVersion(pinned?.[1] ?? '')
    t.equal(tested[0], major, `CI tests Node ${pinned?.[1] ?? '?'}, the image's line`)
    t.ok(enginesAccept(pkg.engines.node, tested), 'engines accept the Node CI pins')
    t.ok(
      enginesAccept(pkg.engines.node, nodeVersion(process.version)),
      `engines accept the Node running this test (${process.version})`,
    )
  },
)

t.test('the image runs as the user the chart expects, with data in the volume', async (t) => {
  const stage = await runtimeStage()
  const values = await readTree('helm/pullthrough/values.yaml')
  const [uid, gid] = lastArgs(stage, 'USER').split(':').map(Number)
  t.ok(uid !== undefined && uid > 0, 'a non-root numeric user')
  t.equal(at(values, 'podSecurityContext.runAsUser'), uid)
  t.equal(at(values, 'podSecurityContext.runAsGroup'), gid)
  t.equal(at(values, 'podSecurityContext.fsGroup'), gid)
  t.equal(at(values, 'podSecurityContext.runAsNonRoot'), true)
  t.equal(at(values, 'securityContext.readOnlyRootFilesystem'), true)

  const volume = '/var/lib/pullthrough'
  t.equal(lastArgs(stage, 'VOLUME'), `["${volume}"]`)
  t.match(
    only(stage, 'RUN')
      .map((i) => i.args)
      .join('\n'),
    `chown ${String(uid)}:${String(gid)} ${volume}`,
  )
  t.equal(at(await readTree('docker/default-config.yaml'), 'storage.path'), volume)
  t.equal(at(await readTree('docker/config.yaml'), 'storage.path'), volume)
  t.equal(at(values, 'config.storage.path'), volume)
  const mounts = service(await compose(), 'pullthrough').volumes as string[]
  t.ok(mounts.includes(`pullthrough-data:${volume}`), 'compose mounts the named volume there')
})

t.test('the image and compose load their configuration files as the server would', async (t) => {
  const stage = await runtimeStage()
  const env = lastArgs(stage, 'ENV')
  const configPath = /PULLTHROUGH_CONFIG=(\S+)/.exec(env)?.[1]
  t.equal(configPath, '/etc/pullthrough/config.yaml')
  t.ok(
    only(stage, 'COPY').some((i) => i.args === `docker/default-config.yaml ${configPath ?? ''}`),
    'the default config is copied there',
  )
  const mounts = service(await compose(), 'pullthrough').volumes as string[]
  t.ok(mounts.includes(`./config.yaml:${configPath ?? ''}:ro`), 'compose mounts its config there')

  for (const file of ['docker/default-config.yaml', 'docker/config.yaml']) {
    const loaded = await loadConfig({ file: join(ROOT, file), cwd: '/', env: {} })
    t.equal(loaded.config.storage.path, '/var/lib/pullthrough', `${file} loads`)
  }
  const composeConfig = await loadConfig({ file: join(ROOT, 'docker/config.yaml'), env: {} })
  t.ok(composeConfig.config.metadata.redis, 'compose uses its Redis')
})

t.test('the environment variables set for the server are ones it reads', async (t) => {
  const known = new Set([...Object.keys(ENV_OVERRIDES), 'PULLTHROUGH_CONFIG'])
  const named = new Set<string>()
  const texts = [
    await readFile(join(ROOT, 'docker', 'Dockerfile'), 'utf8'),
    await readFile(join(ROOT, 'docker', 'compose.yaml'), 'utf8'),
    ...(await readTemplates()).values(),
  ]
  for (const text of texts) {
    for (const m of text.matchAll(/\bPULLTHROUGH_[A-Z_]+/g)) named.add(m[0])
  }
  t.ok(named.has('PULLTHROUGH_REDIS_URL') && named.has('PULLTHROUGH_CONFIG'), [...named].join(' '))
  for (const name of named) t.ok(known.has(name), `${name} is read by the server`)
})

t.test('.dockerignore lets in exactly what the Dockerfile copies', async (t) => {
  const ignore = (await readFile(join(ROOT, '.dockerignore'), 'utf8'))
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'))
  t.equal(ignore[0], '*', 'excludes everything first')
  const allowed = ignore.slice(1).map((line) => line.replace(/^!/, '').replace(/\/$/, ''))
  const sources = new Set<string>()
  for (const copy of only(await readDockerfile(), 'COPY')) {
    const words = copy.args.split(/\s+/).filter((w) => !w.startsWith('--'))
    if (copy.args.includes('--from=')) continue
    for (const source of words.slice(0, -1)) sources.add(source.replace(/\/$/, ''))
  }
  t.same([...sources].sort(), [...allowed].sort())
})

t.test('stopping waits longer than the drain; the cache fits its volume', async (t) => {
  const values = await readTree('helm/pullthrough/values.yaml')
  const drainMs = parseDuration(String(at(values, 'config.server.shutdownTimeout'))) ?? Infinity
  const preStopS = Number(at(values, 'preStopSleepSeconds'))
  const graceS = Number(at(values, 'terminationGracePeriodSeconds'))
  t.ok(graceS * 1000 >= preStopS * 1000 + drainMs + 5000, `grace ${graceS}s > ${preStopS}s + drain`)

  const composeDrain = parseDuration(
    String(at(await readTree('docker/config.yaml'), 'server.shutdownTimeout')),
  )
  const stopGrace = parseDuration(String(service(await compose(), 'pullthrough').stop_grace_period))
  t.ok(
    composeDrain !== undefined && stopGrace !== undefined && stopGrace >= composeDrain + 5000,
    'compose stop_grace_period > server.shutdownTimeout',
  )

  const maxSize = parseSize(String(at(values, 'config.storage.maxSize'))) ?? Infinity
  const volume = /^(\d+)Gi$/.exec(String(at(values, 'persistence.size')))
  const volumeBytes = Number(volume?.[1]) * 1024 ** 3
  t.ok(maxSize <= volumeBytes * 0.9, 'storage.maxSize leaves 10% of the volume free')
})

t.test('compose file is a plain mapping of services and named volumes', async (t) => {
  const file = await readYaml('docker/compose.yaml')
  t.ok(isTree(file))
  t.same(Object.keys(at(file, 'volumes') as Tree).sort(), ['pullthrough-data', 'redis-data'])
  t.equal(at(file, 'services.pullthrough.read_only'), true)
  t.same(at(file, 'services.pullthrough.depends_on'), { redis: { condition: 'service_healthy' } })
})
