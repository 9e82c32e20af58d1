/**
 * The Helm chart cannot drift from the server. No Helm runs here, so these
 * tests check what the chart hands the server instead of rendering it: the
 * ConfigMap is `toYaml .Values.config` (checked below), so `config` is loaded
 * with the server's own loader and schema; values.schema.json must equal the
 * schema generated from the server's; every `.Values` path a template reads
 * must exist in values.yaml; and every value must be read by some template.
 */
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Ajv } from 'ajv'
import t from 'tap'
import { stringify } from 'yaml'
import { configSchema } from '../../src/config/schema.ts'
import { loadConfig } from '../../src/config/load.ts'
import { tempDir } from '../helpers/config.ts'
import {
  at,
  CHART,
  hasPath,
  isTree,
  keyPaths,
  mergeValues,
  readTemplates,
  readTree,
  type Tree,
} from './files.ts'
import { configValuesSchema, VALUES_SCHEMA_FILE } from './values-schema.ts'

const VALUES = 'helm/pullthrough/values.yaml'
/** Where the chart mounts the credentials Secret (templates/_helpers.tpl). */
const CREDENTIALS_DIR = '/etc/pullthrough/credentials'

async function ciValueFiles(): Promise<string[]> {
  const names = await readdir(join(CHART, 'ci'))
  return names.filter((name) => name.endsWith('-values.yaml')).sort()
}

async function valuesWith(ciFile?: string): Promise<Tree> {
  const values = await readTree(VALUES)
  return ciFile ? mergeValues(values, await readTree(`helm/pullthrough/ci/${ciFile}`)) : values
}

function tree(value: unknown, what: string): Tree {
  if (!isTree(value)) throw new Error(`${what} is not a mapping`)
  return value
}

/**
 * Writes `config` as the ConfigMap does and the Secret files the pod would
 * mount, and returns the environment the Deployment sets, so loadConfig sees
 * what the server in the pod sees.
 */
async function podView(
  values: Tree,
  dir: string,
): Promise<{ file: string; env: NodeJS.ProcessEnv }> {
  const config = structuredClone(tree(values.config, 'config'))
  const passwordsValue = at(values, 'credentials.passwords')
  const passwords = isTree(passwordsValue) ? passwordsValue : {}
  const secretDir = join(dir, 'credentials')
  await mkdir(secretDir, { recursive: true })
  for (const pool of [
    ...((at(config, 'docker.registries') as Tree[] | undefined) ?? []),
    ...((at(config, 'pypi.indexes') as Tree[] | undefined) ?? []),
  ]) {
    for (const upstream of (pool.upstreams as Tree[] | undefined) ?? []) {
      const file = upstream.passwordFile
      if (typeof file !== 'string' || !file.startsWith(`${CREDENTIALS_DIR}/`)) continue
      const key = file.slice(CREDENTIALS_DIR.length + 1)
      const password = at(values, 'credentials.existingSecret')
        ? 'from-an-existing-secret'
        : passwords[key]
      if (typeof password !== 'string') throw new Error(`credentials.passwords has no key ${key}`)
      await writeFile(join(secretDir, key), `${password}\n`)
      upstream.passwordFile = join(secretDir, key)
    }
  }
  const file = join(dir, 'config.yaml')
  await writeFile(file, stringify(config))
  const env: NodeJS.ProcessEnv = {
    PULLTHROUGH_STORAGE_PATH: String(at(config, 'storage.path')),
  }
  if (at(values, 'redis.url')) env.PULLTHROUGH_REDIS_URL = String(at(values, 'redis.url'))
  else if (at(values, 'redis.existingSecret')) {
    env.PULLTHROUGH_REDIS_URL = 'redis://from-a-secret:6379/0'
  } else if (at(values, 'redis.deploy.enabled')) {
    env.PULLTHROUGH_REDIS_URL = at(values, 'redis.deploy.auth.existingSecret')
      ? 'redis://:password@demo-pullthrough-redis:6379/0'
      : 'redis://demo-pullthrough-redis:6379/0'
  }
  const clusterPort = at(config, 'cluster.port')
  if (typeof clusterPort === 'number')
    env.PULLTHROUGH_CLUSTER_ADVERTISE = `http://10.0.0.7:${clusterPort}`
  if (at(values, 'clusterSecret.existingSecret'))
    env.PULLTHROUGH_CLUSTER_SECRET = 'a-secret-from-the-cluster-secret-0123456789'
  for (const entry of (values.extraEnv as Tree[] | undefined) ?? []) {
    env[String(entry.name)] = typeof entry.value === 'string' ? entry.value : 'from-a-secret'
  }
  return { file, env }
}

t.test('the ConfigMap renders `config` unchanged, as the server config file', async (t) => {
  const templates = await readTemplates()
  const configMap = templates.get('configmap.yaml') ?? ''
  t.match(configMap, /config\.yaml: \|\n\s*\{\{- toYaml \.Values\.config \| nindent 4 \}\}/)
  const deployment = templates.get('deployment.yaml') ?? ''
  t.match(deployment, /args: \[serve, --config, \/etc\/pullthrough\/config\/config\.yaml\]/)
  t.match(deployment, /- name: config\n\s+mountPath: \/etc\/pullthrough\/config\n/)
})

t.test("values.yaml's config is the server's built-in defaults, cache in the volume", async (t) => {
  const dir = await tempDir(t)
  const { file, env } = await podView(await valuesWith(), dir)
  const chart = await loadConfig({ file, cwd: dir, env })
  const defaults = await loadConfig({ cwd: '/nonexistent-dir-for-defaults', env: {} })
  t.equal(chart.config.storage.path, '/var/lib/pullthrough')
  t.same(
    { ...chart.config, storage: { ...chart.config.storage, path: '' } },
    { ...defaults.config, storage: { ...defaults.config.storage, path: '' } },
  )
})

t.test("values.yaml's config has the keys of config.example.yaml", async (t) => {
  const values = await valuesWith()
  const example = await readTree('config.example.yaml')
  t.same([...keyPaths(values.config)].sort(), [...keyPaths(example)].sort())
})

t.test("values.yaml's config section mentions every key the schema accepts", async (t) => {
  const text = await readFile(join(CHART, 'values.yaml'), 'utf8')
  const section = /^config:\n((?:[ #\n].*\n?)*)/m.exec(text)?.[1] ?? ''
  t.ok(section.length > 1000, 'found the config section')
  const exampleKeys = [...keyPaths(await readTree('config.example.yaml'))]
  const names = new Set(
    [...exampleKeys, ...schemaKeyNames()].map((path) => path.split(/[.[\]]+/).at(-1) ?? ''),
  )
  for (const name of names) {
    if (name === '') continue
    t.match(section, new RegExp(`^\\s*#?\\s*(- )?${name}:`, 'm'), `mentions ${name}`)
  }
})

/** Leaf key names of the server's schema, from the JSON schema generated from it. */
function schemaKeyNames(): string[] {
  const names: string[] = []
  const walk = (node: unknown): void => {
    if (Array.isArray(node)) node.forEach(walk)
    else if (isTree(node)) {
      if (isTree(node.properties)) names.push(...Object.keys(node.properties))
      Object.values(node).forEach(walk)
    }
  }
  walk(configValuesSchema())
  return names
}

t.test('values.schema.json checks config with the schema generated from the server', async (t) => {
  const schema = tree(JSON.parse(await readFile(VALUES_SCHEMA_FILE, 'utf8')), 'values.schema.json')
  t.same(
    at(schema, 'properties.config'),
    configValuesSchema(),
    'out of date: run `node --import tsx test/deploy/values-schema.ts`',
  )
  t.ok(configSchema.safeParse({}).success, 'the server accepts an empty config')
})

t.test('values.yaml and every ci values file pass values.schema.json', async (t) => {
  const schema = JSON.parse(await readFile(VALUES_SCHEMA_FILE, 'utf8')) as object
  const validate = new Ajv({ allErrors: true, strict: false }).compile(schema)
  const files = await ciValueFiles()
  t.ok(files.length >= 3, `ci/ has value files (${files.join(', ')})`)
  for (const file of [undefined, ...files]) {
    const ok = validate(await valuesWith(file))
    t.ok(ok, `${file ?? 'values.yaml'}: ${JSON.stringify(validate.errors ?? [])}`)
  }
  // The schema has teeth: an unknown key and a wrong type are refused at install.
  const values = await valuesWith()
  t.notOk(validate(mergeValues(values, { config: { server: { prot: 5000 } } })), 'unknown key')
  t.notOk(validate(mergeValues(values, { config: { log: { level: 'loud' } } })), 'bad enum')
  t.notOk(validate(mergeValues(values, { service: { type: 'ExternalName' } })), 'bad service')
})

t.test('every ci values file yields a configuration the server loads', async (t) => {
  for (const file of await ciValueFiles()) {
    const dir = await tempDir(t)
    const values = await valuesWith(file)
    const { file: configFile, env } = await podView(values, dir)
    const loaded = await loadConfig({ file: configFile, cwd: dir, env })
    t.equal(loaded.config.storage.path, at(values, 'config.storage.path'), `${file}: storage path`)
    const replicas = Number(values.replicaCount)
    if (replicas > 1) {
      t.ok(loaded.config.metadata.redis, `${file}: ${replicas} replicas use Redis`)
      const shared = (at(values, 'persistence.accessModes') as string[]).includes('ReadWriteMany')
      const inBucket = loaded.config.storage.s3 !== undefined && !at(values, 'persistence.enabled')
      t.ok(
        shared || inBucket,
        `${file}: ${replicas} replicas share a ReadWriteMany volume or keep the blobs in a bucket`,
      )
    }
  }
})

/** `.Values` paths a template reads, with `$x := .Values...` aliases and `dig` resolved. */
function valuesReferences(templates: Map<string, string>): Map<string, string> {
  const refs = new Map<string, string>()
  for (const [name, text] of templates) {
    const aliases = new Map<string, string>()
    for (const m of text.matchAll(/\$(\w+) := \.Values((?:\.\w+)+)\s*\}\}/g)) {
      aliases.set(m[1] ?? '', (m[2] ?? '').slice(1))
    }
    for (const m of text.matchAll(/\.Values((?:\.\w+)+)/g)) refs.set((m[1] ?? '').slice(1), name)
    for (const m of text.matchAll(/\$(\w+)((?:\.\w+)+)/g)) {
      const base = aliases.get(m[1] ?? '')
      if (base !== undefined) refs.set(`${base}${m[2] ?? ''}`, name)
    }
    for (const m of text.matchAll(/dig((?: "\w+")+) \S+ \.Values((?:\.\w+)+)/g)) {
      const keys = [...(m[1] ?? '').matchAll(/"(\w+)"/g)].map((k) => k[1] ?? '')
      refs.set([(m[2] ?? '').slice(1), ...keys].join('.'), name)
    }
  }
  return refs
}

/** Whether a JSON schema defines a dotted path of nested properties. */
function schemaHasPath(schema: unknown, path: string): boolean {
  let node = schema
  for (const key of path.split('.')) {
    const properties = at(node, 'properties')
    if (!isTree(properties) || !(key in properties)) return false
    node = properties[key]
  }
  return true
}

t.test(
  'templates read only values that values.yaml (or the server, for config) defines',
  async (t) => {
    const values = await valuesWith()
    const refs = valuesReferences(await readTemplates())
    t.ok(refs.size > 60, `found the references (${refs.size})`)
    const schema = configValuesSchema()
    for (const [path, template] of refs) {
      // Keys under config are the server's: optional ones (server.tls) are not in values.yaml.
      const exists = path.startsWith('config.')
        ? schemaHasPath(schema, path.slice('config.'.length))
        : hasPath(values, path)
      t.ok(exists, `${template} reads .Values.${path}`)
    }
  },
)

t.test('every value in values.yaml is read by a template', async (t) => {
  const values = await valuesWith()
  const refs = [...valuesReferences(await readTemplates()).keys()]
  const leaves = [...keyPaths(values)].filter((path) => {
    if (path.includes('[]') || path.startsWith('config.')) return false
    const value = at(values, path)
    return !isTree(value) || Object.keys(value).length === 0
  })
  for (const leaf of leaves) {
    const read = refs.some((ref) => ref === leaf || leaf.startsWith(`${ref}.`))
    t.ok(read, `.Values.${leaf} is used`)
  }
})
