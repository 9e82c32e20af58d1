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
import { createLogger } from './observability/logger.ts'
import { runServer } from './serve.ts'

const EXIT_OK = 0
const EXIT_FAILURE = 1
const EXIT_USAGE = 2

const USAGE = `Usage: pullthrough <command> [options]

A pull-through cache for container images (Docker Registry v2 / OCI) and
Python packages (PyPI simple API).

Commands:
  serve              Start the server

Options:
  -c, --config FILE  Config file (default: $PULLTHROUGH_CONFIG, else ./config.yaml
                     if present, else built-in defaults)
  -h, --help         Show this help
  -v, --version      Show the version

Environment overrides: PULLTHROUGH_CONFIG, PULLTHROUGH_HOST, PULLTHROUGH_PORT,
PULLTHROUGH_STORAGE_PATH, PULLTHROUGH_REDIS_URL, PULLTHROUGH_LOG_LEVEL.
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
  if (command !== 'serve') return fail(`unknown command "${command}"\n\n${USAGE}`, EXIT_USAGE)
  if (rest.length > 0) return fail(`unexpected argument "${rest[0] ?? ''}"`, EXIT_USAGE)
  return serve(values.config)
}

async function serve(configFile: string | undefined): Promise<number> {
  let loaded
  try {
    loaded = await loadConfig({ file: configFile })
  } catch (error) {
    return fail(`invalid config: ${(error as Error).message}`, EXIT_USAGE)
  }
  const { config, secrets } = loaded
  const logger = createLogger({ level: config.log.level, secrets })
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
