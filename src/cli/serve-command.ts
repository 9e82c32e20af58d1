/** `pullthrough serve`: config -> app -> server, until a signal stops it. */
import { mkdir } from 'node:fs/promises'
import { buildApp } from '../app.ts'
import { ConfigError } from '../config/errors.ts'
import { loadConfig } from '../config/load.ts'
import { createLogger, prettyLogs, type Logger } from '../observability/logger.ts'
import { rehearseFill } from '../cache/fill-rehearsal.ts'
import { runServer } from '../serve.ts'
import { EXIT_FAILURE, EXIT_USAGE, UsageError, type CommandSpec } from './command.ts'
import { text } from './client-commands.ts'

export function serveSpec(version: string): CommandSpec {
  return {
    name: 'serve',
    summary: 'Start the server',
    description:
      'Starts the cache: the Docker Registry v2 / OCI endpoints under /v2/, the PyPI simple index under /simple/ (or /<index>/simple/), the status page under /-/ and its API under /-/api/v1/, /healthz, /readyz and /metrics. Without a config file it mirrors Docker Hub and PyPI into ./data on port 5000. SIGTERM or SIGINT stop it gracefully within server.shutdownTimeout.\n\nEnvironment overrides: PULLTHROUGH_CONFIG, PULLTHROUGH_HOST, PULLTHROUGH_PORT, PULLTHROUGH_STORAGE_PATH, PULLTHROUGH_REDIS_URL, PULLTHROUGH_LOG_LEVEL, PULLTHROUGH_OFFLINE. Every key is explained in config.example.yaml.',
    options: {
      offline: {
        type: 'boolean',
        help: 'Contact no upstream: serve what is cached, answer 503 for the rest (also offline: true or PULLTHROUGH_OFFLINE=true; switch at runtime with PUT /-/api/v1/offline)',
      },
    },
    examples: [
      'pullthrough serve',
      'pullthrough serve --config /etc/pullthrough/config.yaml --offline',
    ],
    async run({ values, args }) {
      if (args.length > 0) throw new UsageError(`unexpected argument "${args[0] ?? ''}"`)
      return serve(text(values, 'config'), values.offline === true, version)
    },
  }
}

async function serve(
  configFile: string | undefined,
  offline: boolean,
  version: string,
): Promise<number> {
  let loaded
  try {
    loaded = await loadConfig({ file: configFile })
  } catch (error) {
    throw new UsageError(`invalid config: ${(error as Error).message}`)
  }
  const config = offline ? { ...loaded.config, offline: true } : loaded.config
  const { secrets } = loaded
  const logger = createLogger({
    level: config.log.level,
    secrets,
    pretty: prettyLogs(config.log.format, process.stdout.isTTY),
  })
  logger.info(
    { version, config: loaded.file ?? '(built-in defaults)', storage: config.storage.path },
    'starting pullthrough',
  )
  try {
    // Before anything is opened: a signal now stops a process that holds nothing.
    await warmUp(config.storage.path, logger)
    const app = await buildApp(config, { logger })
    const server = await runServer(app, config)
    return await server.stopped
  } catch (error) {
    logger.fatal({ err: error }, 'cannot start')
    const code = error instanceof ConfigError ? EXIT_USAGE : EXIT_FAILURE
    process.stderr.write(`pullthrough: cannot start: ${(error as Error).message}\n`)
    return code
  }
}

/** Before listening, so the first pull runs compiled code (cache/fill-rehearsal.ts); never fatal. */
async function warmUp(storagePath: string, logger: Logger): Promise<void> {
  try {
    await mkdir(storagePath, { recursive: true })
    const { bytes, ms } = await rehearseFill(storagePath, logger)
    logger.info({ bytes, ms: Math.round(ms) }, 'transfer path warmed up')
  } catch (error) {
    logger.warn({ err: error }, 'could not warm up the transfer path; starting anyway')
  }
}
