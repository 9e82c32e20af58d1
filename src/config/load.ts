/**
 * Loads the configuration once at start-up: YAML file (if any) -> environment
 * overrides -> schema validation -> secrets resolved -> deep-frozen object.
 * This is the only module that reads process.env or config files.
 */
import { existsSync } from 'node:fs'
import { access, constants, readFile } from 'node:fs/promises'
import { dirname, resolve } from 'node:path'
import { parseDocument } from 'yaml'
import type { z } from 'zod'
import { MIN_SECRET_CHARS } from './cluster-schema.ts'
import { ConfigError } from './errors.ts'
import { configSchema, type Config } from './schema.ts'

export interface LoadOptions {
  /** Path from `--config`; wins over PULLTHROUGH_CONFIG and ./config.yaml. */
  readonly file?: string | undefined
  readonly env?: NodeJS.ProcessEnv
  readonly cwd?: string
}

export interface LoadedConfig {
  readonly config: Config
  /** The file the config came from, or undefined for built-in defaults. */
  readonly file: string | undefined
  /**
   * Secret values the logger must redact wherever they appear: passwords, their
   * Basic `base64(user:password)` form, Redis URL credentials.
   */
  readonly secrets: readonly string[]
}

/** Environment variables that override single keys, and the key each sets. */
export const ENV_OVERRIDES = {
  PULLTHROUGH_HOST: ['server', 'host'],
  PULLTHROUGH_PORT: ['server', 'port'],
  PULLTHROUGH_STORAGE_PATH: ['storage', 'path'],
  PULLTHROUGH_REDIS_URL: ['metadata', 'redis', 'url'],
  PULLTHROUGH_LOG_LEVEL: ['log', 'level'],
  PULLTHROUGH_OFFLINE: ['offline'],
  PULLTHROUGH_CLUSTER_ADVERTISE: ['cluster', 'advertise'],
  PULLTHROUGH_CLUSTER_SECRET: ['cluster', 'secret'],
} as const satisfies Record<string, readonly string[]>

const DEFAULT_FILE = 'config.yaml'

/** Loads and validates the configuration; throws ConfigError with a one-line message. */
export async function loadConfig(options: LoadOptions = {}): Promise<LoadedConfig> {
  const env = options.env ?? process.env
  const cwd = options.cwd ?? process.cwd()
  const file = chooseFile(options.file, env, cwd)
  const raw = file === undefined ? {} : await readYaml(file)
  const overridden = applyEnvOverrides(dropNulls(raw), env)
  const parsed = configSchema.safeParse(overridden, { error: describeIssue })
  if (!parsed.success) throw new ConfigError(formatIssues(parsed.error.issues, env, file))
  const config = parsed.data
  const secrets = await resolveSecrets(config, env)
  const storagePath = resolve(cwd, config.storage.path)
  const sync = await resolveRequirementFiles(config.sync, file === undefined ? cwd : dirname(file))
  return {
    config: deepFreeze({ ...config, storage: { ...config.storage, path: storagePath }, sync }),
    file,
    secrets,
  }
}

function chooseFile(
  explicit: string | undefined,
  env: NodeJS.ProcessEnv,
  cwd: string,
): string | undefined {
  const named = explicit ?? nonEmpty(env.PULLTHROUGH_CONFIG)
  if (named !== undefined) return resolve(cwd, named)
  const fallback = resolve(cwd, DEFAULT_FILE)
  return existsSync(fallback) ? fallback : undefined
}

async function readYaml(file: string): Promise<unknown> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'error'
    throw new ConfigError(`${file}: cannot read config file (${code})`, { cause: error })
  }
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true })
  const first = doc.errors[0]
  if (first) {
    const pos = first.linePos?.[0]
    const where = pos ? `line ${pos.line}, column ${pos.col}: ` : ''
    throw new ConfigError(`${file}: ${where}${first.message.split('\n')[0] ?? 'invalid YAML'}`)
  }
  const value: unknown = doc.toJS()
  // An empty file means "all defaults".
  if (value === null || value === undefined) return {}
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw new ConfigError(`${file}: the top level must be a mapping of keys`)
  }
  return value
}

/**
 * `key:` with nothing after it (say, a section whose children are all commented
 * out) is YAML null; treat it as absent so the defaults apply.
 */
function dropNulls(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(dropNulls)
  if (value === null || typeof value !== 'object') return value
  return Object.fromEntries(
    Object.entries(value)
      .filter(([, child]) => child !== null)
      .map(([key, child]) => [key, dropNulls(child)]),
  )
}

function applyEnvOverrides(raw: unknown, env: NodeJS.ProcessEnv): unknown {
  const root = structuredClone(raw) as Record<string, unknown>
  for (const [name, path] of Object.entries(ENV_OVERRIDES)) {
    const value = nonEmpty(env[name])
    if (value === undefined) continue
    let node = root
    for (const key of path.slice(0, -1)) {
      const child = node[key]
      node[key] = child !== null && typeof child === 'object' ? child : {}
      node = node[key] as Record<string, unknown>
    }
    const leaf = path[path.length - 1] ?? ''
    // Numbers and booleans arrive as strings from the environment; the schema checks the result.
    node[leaf] = fromEnv(name, value)
  }
  return root
}

function fromEnv(name: string, value: string): unknown {
  if (name === 'PULLTHROUGH_PORT' && /^\d+$/.test(value)) return Number(value)
  if (name === 'PULLTHROUGH_OFFLINE') {
    const flag = value.toLowerCase()
    if (['true', '1', 'yes', 'on'].includes(flag)) return true
    if (['false', '0', 'no', 'off'].includes(flag)) return false
  }
  return value
}

function describeIssue(issue: z.core.$ZodRawIssue): string | undefined {
  switch (issue.code) {
    case 'invalid_type':
      return issue.input === undefined
        ? 'is required'
        : `expected ${issue.expected}, got ${typeName(issue.input)}`
    case 'unrecognized_keys':
      return `unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => JSON.stringify(k)).join(', ')}`
    case 'invalid_value':
      return `must be one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}`
    case 'invalid_union':
      return `has the wrong type (${typeName(issue.input)})`
    case 'too_small':
      return issue.origin === 'array'
        ? `needs at least ${String(issue.minimum)} entries`
        : `must be at least ${String(issue.minimum)}`
    case 'too_big':
      return `must be at most ${String(issue.maximum)}`
    default:
      return undefined
  }
}

function typeName(value: unknown): string {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'a list'
  if (typeof value === 'object') return 'a mapping'
  return typeof value === 'string' ? `string ${JSON.stringify(value.slice(0, 40))}` : typeof value
}

/** `docker.registries[0].upstreams[1].url` from ['docker', 'registries', 0, ...]. */
export function formatPath(path: readonly PropertyKey[]): string {
  return path
    .map((key, i) => (typeof key === 'number' ? `[${key}]` : `${i === 0 ? '' : '.'}${String(key)}`))
    .join('')
}

function formatIssues(
  issues: readonly z.core.$ZodIssue[],
  env: NodeJS.ProcessEnv,
  file: string | undefined,
): string {
  const first = issues[0]
  if (!first) return 'invalid configuration'
  // An unknown key is reported at the key itself, not at the mapping that holds it.
  const unknownKey = first.code === 'unrecognized_keys' ? first.keys.slice(0, 1) : []
  const path = formatPath([...first.path, ...unknownKey])
  const fromEnv = Object.entries(ENV_OVERRIDES).find(
    ([name, keys]) => nonEmpty(env[name]) !== undefined && keys.join('.') === path,
  )
  const source = fromEnv ? ` (from ${fromEnv[0]})` : file ? '' : ' (built-in defaults)'
  const more = issues.length > 1 ? ` (and ${issues.length - 1} more)` : ''
  const message = unknownKey.length > 0 ? 'unknown key' : first.message
  return `${path || '(top level)'}${source}: ${message}${more}`
}

/**
 * Requirements files of sync lists, made absolute against the config file's
 * directory (where a ConfigMap mounts them too) and checked readable now; they
 * are read again at each run, so an edited file needs no restart.
 */
async function resolveRequirementFiles(
  lists: z.output<typeof configSchema>['sync'],
  base: string,
): Promise<z.output<typeof configSchema>['sync']> {
  const resolved = []
  for (const [i, list] of lists.entries()) {
    const requirements = []
    for (const [j, path] of list.requirements.entries()) {
      const absolute = resolve(base, path)
      try {
        await access(absolute, constants.R_OK)
      } catch (error) {
        throw new ConfigError(
          `sync[${i}].requirements[${j}]: cannot read ${absolute} (${(error as NodeJS.ErrnoException).code ?? String(error)})`,
        )
      }
      requirements.push(absolute)
    }
    resolved.push({ ...list, requirements })
  }
  return resolved
}

async function resolveSecrets(
  config: z.output<typeof configSchema>,
  env: NodeJS.ProcessEnv,
): Promise<string[]> {
  const secrets: string[] = []
  const pools = [
    ...config.docker.registries.map((pool, i) => ({ pool, path: `docker.registries[${i}]` })),
    ...config.pypi.indexes.map((pool, i) => ({ pool, path: `pypi.indexes[${i}]` })),
  ]
  for (const { pool, path } of pools) {
    for (const [j, upstream] of pool.upstreams.entries()) {
      const where = `${path}.upstreams[${j}]`
      if (upstream.passwordFile !== undefined) {
        upstream.password = await readSecretFile(upstream.passwordFile, `${where}.passwordFile`)
      } else if (upstream.passwordEnv !== undefined) {
        const value = nonEmpty(env[upstream.passwordEnv])
        if (value === undefined) {
          throw new ConfigError(
            `${where}.passwordEnv: environment variable ${upstream.passwordEnv} is not set`,
          )
        }
        upstream.password = value
      }
      if (upstream.password !== undefined) {
        secrets.push(upstream.password)
        // The form it travels in: `Authorization: Basic base64(user:password)`.
        if (upstream.username !== undefined)
          secrets.push(basicToken(upstream.username, upstream.password))
      }
    }
  }
  const { admin } = config
  if (admin.tokenFile !== undefined)
    admin.token = await readSecretFile(admin.tokenFile, 'admin.tokenFile')
  else if (admin.tokenEnv !== undefined) {
    const value = nonEmpty(env[admin.tokenEnv])
    if (value === undefined)
      throw new ConfigError(`admin.tokenEnv: environment variable ${admin.tokenEnv} is not set`)
    admin.token = value
  }
  if (admin.token !== undefined) secrets.push(admin.token)
  const { cluster } = config
  if (cluster?.secretFile !== undefined)
    cluster.secret = await readSecretFile(cluster.secretFile, 'cluster.secretFile')
  else if (cluster?.secretEnv !== undefined) {
    const value = nonEmpty(env[cluster.secretEnv])
    if (value === undefined)
      throw new ConfigError(
        `cluster.secretEnv: environment variable ${cluster.secretEnv} is not set`,
      )
    cluster.secret = value
  }
  if (cluster?.secret !== undefined) {
    if (cluster.secret.length < MIN_SECRET_CHARS)
      throw new ConfigError(`cluster: the secret must be at least ${MIN_SECRET_CHARS} characters`)
    secrets.push(cluster.secret)
  }
  const redisUrl = config.metadata.redis?.url
  const redisPassword = redisUrl === undefined ? '' : decodeURIComponent(new URL(redisUrl).password)
  if (redisPassword) secrets.push(redisPassword)
  const s3 = config.storage.s3?.credentials
  if (s3)
    secrets.push(s3.secretAccessKey, ...(s3.sessionToken === undefined ? [] : [s3.sessionToken]))
  return secrets
}

/**
 * base64(`user:password`), as in a Basic Authorization header (RFC 7617),
 * without its `=` padding, so it is also found where the padding was
 * percent-encoded (`%3D`) or dropped.
 */
function basicToken(username: string, password: string): string {
  return Buffer.from(`${username}:${password}`).toString('base64').replace(/=+$/, '')
}

async function readSecretFile(file: string, key: string): Promise<string> {
  try {
    // Secret files (Kubernetes Secrets) usually end with a newline that is not part of the secret.
    const value = (await readFile(file, 'utf8')).replace(/\r?\n$/, '')
    if (value === '') throw new ConfigError(`${key}: the file is empty`)
    return value
  } catch (error) {
    if (error instanceof ConfigError) throw error
    const code = (error as NodeJS.ErrnoException).code ?? 'error'
    throw new ConfigError(`${key}: cannot read the file (${code})`, { cause: error })
  }
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    for (const child of Object.values(value)) deepFreeze(child)
    Object.freeze(value)
  }
  return value
}
