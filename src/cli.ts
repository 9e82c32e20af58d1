#!/usr/bin/env node
/**
 * The `pullthrough` command: args -> config -> app -> server. Exit codes:
 * 0 clean stop, 1 runtime failure, 2 bad usage or invalid configuration.
 */
import { createRequire } from 'node:module'
import { parseArgs } from 'node:util'
import { buildApp } from './app.ts'
import { loadConfig } from './config/load.ts'
import { ConfigError } from './config/errors.ts'
import { SYNC_LIST_NAME } from './config/schema.ts'
import { createLogger, prettyLogs } from './observability/logger.ts'
import { runServer } from './serve.ts'
import { ClientError, localUrl } from './client/api-client.ts'
import { LS_SORTS, lsCommand, statsCommand } from './client/commands.ts'
import { gcCommand } from './client/gc-command.ts'
import { verifyCommand } from './client/verify-command.ts'
import { syncCommand } from './client/sync-command.ts'

const EXIT_OK = 0
const EXIT_FAILURE = 1
const EXIT_USAGE = 2

const USAGE = `Usage: pullthrough <command> [options]

A pull-through cache for container images (Docker Registry v2 / OCI) and
Python packages (PyPI simple API).

Commands:
  serve              Start the server
  stats              Pulls, hit ratio, bytes saved and disk use of a running server
  ls [docker|pypi]   The repositories and projects it serves, most pulled first
  verify             Re-hash every stored blob of a running server at a bounded
                     rate; mismatches are quarantined (exit 1 when any)
  gc [--dry-run]     Reconcile a running server's metadata with its disk and
                     apply retention.unusedFor; --dry-run only reports
  sync [LIST...]     Run a running server's sync lists (all when none is named)
                     now, with progress; exit 1 when an item failed

Options:
  -c, --config FILE  Config file (default: $PULLTHROUGH_CONFIG, else ./config.yaml
                     if present, else built-in defaults)
  -h, --help         Show this help
  -v, --version      Show the version

Options of serve:
  --offline          Contact no upstream: serve what is cached, answer 503 for
                     the rest (also: offline: true, PULLTHROUGH_OFFLINE=true;
                     switch at runtime with PUT /-/api/v1/offline)

Options of stats, ls, verify, gc and sync:
  --url URL          The server (default: the config's server.host and port)
  --token TOKEN      Its admin.token (default: $PULLTHROUGH_ADMIN_TOKEN, else the config's)
  --json             Print the API's JSON instead of a table
  --sort KEY         ls: pulls, size or last (default pulls)
  --window W         ls: 1h, 24h, 7d, 30d or 90d (default 24h)
  --limit N          ls: rows per protocol (default 50)
  --rate RATE        verify: read at most this fast, like 100MB/s (default:
                     the server's scrub.rate)

  --dry-run          gc: report what would change, change nothing

Examples: pullthrough ls docker --sort size --window 7d
          pullthrough verify --rate 200MB/s
          pullthrough gc --dry-run
          pullthrough sync base python-wheels

Environment overrides: PULLTHROUGH_CONFIG, PULLTHROUGH_HOST, PULLTHROUGH_PORT,
PULLTHROUGH_STORAGE_PATH, PULLTHROUGH_REDIS_URL, PULLTHROUGH_LOG_LEVEL,
PULLTHROUGH_OFFLINE.
Documentation: config.example.yaml, docs/ and README.md.
`

function version(): string {
  // dist/cli.js and src/cli.ts both sit one level below package.json.
  const pkg = createRequire(import.meta.url)('../package.json') as { version: string }
  return pkg.version
}

function fail(message: string, code: number): number {
  process.stderr.write(`pullthrough: ${message}\n`)
  return code
}

async function main(argv: string[]): Promise<number> {
  let parsed
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        config: { type: 'string', short: 'c' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean', short: 'v' },
        url: { type: 'string' },
        token: { type: 'string' },
        json: { type: 'boolean' },
        sort: { type: 'string' },
        window: { type: 'string' },
        limit: { type: 'string' },
        offline: { type: 'boolean' },
        rate: { type: 'string' },
        'dry-run': { type: 'boolean' },
      },
    })
  } catch (error) {
    return fail(`${(error as Error).message}\n\n${USAGE}`, EXIT_USAGE)
  }
  const { values, positionals } = parsed
  if (values.help) {
    process.stdout.write(USAGE)
    return EXIT_OK
  }
  if (values.version) {
    process.stdout.write(`${version()}\n`)
    return EXIT_OK
  }
  const [command, ...rest] = positionals
  if (command === undefined) return fail(`missing command\n\n${USAGE}`, EXIT_USAGE)
  if (values.offline === true && command !== 'serve')
    return fail('--offline is an option of serve', EXIT_USAGE)
  if (values.rate !== undefined && command !== 'verify')
    return fail('--rate is an option of verify', EXIT_USAGE)
  if (values['dry-run'] === true && command !== 'gc')
    return fail('--dry-run is an option of gc', EXIT_USAGE)
  if (
    command === 'stats' ||
    command === 'ls' ||
    command === 'verify' ||
    command === 'gc' ||
    command === 'sync'
  )
    return client(command, rest, values)
  if (command !== 'serve') return fail(`unknown command "${command}"\n\n${USAGE}`, EXIT_USAGE)
  if (rest.length > 0) return fail(`unexpected argument "${rest[0] ?? ''}"`, EXIT_USAGE)
  return serve(values.config, values.offline === true)
}

/** Rows per protocol `ls` asks for at most (the API's page size). */
const MAX_LS_LIMIT = 500

async function client(
  command: 'stats' | 'ls' | 'verify' | 'gc' | 'sync',
  rest: string[],
  values: Record<string, string | boolean | undefined>,
): Promise<number> {
  const text = (name: string) => (typeof values[name] === 'string' ? values[name] : undefined)
  let url = text('url')
  let token = text('token') ?? nonEmpty(process.env.PULLTHROUGH_ADMIN_TOKEN)
  if (url === undefined || token === undefined) {
    try {
      const { config } = await loadConfig({ file: text('config') })
      url ??= localUrl(config)
      token ??= config.admin.token
    } catch (error) {
      return fail(`invalid config: ${(error as Error).message}`, EXIT_USAGE)
    }
  }
  const common = {
    url,
    token,
    json: values.json === true,
    write: (s: string) => process.stdout.write(s),
  }
  try {
    if (command === 'stats') {
      if (rest.length > 0) return fail(`unexpected argument "${rest[0] ?? ''}"`, EXIT_USAGE)
      await statsCommand(common)
      return EXIT_OK
    }
    if (command === 'gc') {
      if (rest.length > 0) return fail(`unexpected argument "${rest[0] ?? ''}"`, EXIT_USAGE)
      await gcCommand({ ...common, dryRun: values['dry-run'] === true })
      return EXIT_OK
    }
    if (command === 'sync') {
      const bad = rest.find((name) => !SYNC_LIST_NAME.test(name))
      if (bad !== undefined) return fail(`"${bad}" is not a sync list name`, EXIT_USAGE)
      const runs = await syncCommand({ ...common, lists: rest, progress: process.stderr })
      return runs.some((r) => r.failed > 0 || r.error !== null) ? EXIT_FAILURE : EXIT_OK
    }
    if (command === 'verify') {
      if (rest.length > 0) return fail(`unexpected argument "${rest[0] ?? ''}"`, EXIT_USAGE)
      const run = await verifyCommand({ ...common, rate: text('rate'), progress: process.stderr })
      return run.corrupt > 0 || run.error !== null ? EXIT_FAILURE : EXIT_OK
    }
    const [protocol, extra] = rest
    if (extra !== undefined) return fail(`unexpected argument "${extra}"`, EXIT_USAGE)
    if (protocol !== undefined && protocol !== 'docker' && protocol !== 'pypi')
      return fail(`ls takes docker or pypi, not "${protocol}"`, EXIT_USAGE)
    const sort = text('sort') ?? 'pulls'
    if (!(sort in LS_SORTS))
      return fail(`--sort takes pulls, size or last, not "${sort}"`, EXIT_USAGE)
    const limit = Number(text('limit') ?? 50)
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LS_LIMIT)
      return fail(`--limit takes a whole number from 1 to ${MAX_LS_LIMIT}`, EXIT_USAGE)
    await lsCommand({
      ...common,
      protocol,
      sort: sort as keyof typeof LS_SORTS,
      window: text('window') ?? '24h',
      limit,
    })
    return EXIT_OK
  } catch (error) {
    if (error instanceof ClientError) return fail(error.message, EXIT_FAILURE)
    throw error
  }
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value
}

async function serve(configFile: string | undefined, offline: boolean): Promise<number> {
  let loaded
  try {
    loaded = await loadConfig({ file: configFile })
  } catch (error) {
    return fail(`invalid config: ${(error as Error).message}`, EXIT_USAGE)
  }
  const config = offline ? { ...loaded.config, offline: true } : loaded.config
  const { secrets } = loaded
  const logger = createLogger({
    level: config.log.level,
    secrets,
    pretty: prettyLogs(config.log.format, process.stdout.isTTY),
  })
  logger.info(
    {
      version: version(),
      config: loaded.file ?? '(built-in defaults)',
      storage: config.storage.path,
    },
    'starting pullthrough',
  )
  try {
    const app = await buildApp(config, { logger })
    const server = await runServer(app, config)
    return await server.stopped
  } catch (error) {
    logger.fatal({ err: error }, 'cannot start')
    const code = error instanceof ConfigError ? EXIT_USAGE : EXIT_FAILURE
    return fail(`cannot start: ${(error as Error).message}`, code)
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    // After a server stop, exit even if a library left a timer behind: the bound on
    // shutdown is a promise to the operator (and to Kubernetes' grace period).
    if (process.argv[2] === 'serve') process.exit(code)
    process.exitCode = code
  },
  (error: unknown) => {
    process.stderr.write(`pullthrough: unexpected error: ${String(error)}\n`)
    process.exitCode = EXIT_FAILURE
  },
)
