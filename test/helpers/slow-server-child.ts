/**
 * A child process for the shutdown tests: the real config loader, app and server
 * lifecycle (what `pullthrough serve` runs) plus one route that streams slowly.
 * Env: SLOW_CHUNKS, SLOW_INTERVAL_MS. Prints the listening line like the CLI.
 */
import { Readable } from 'node:stream'
import { setTimeout as sleep } from 'node:timers/promises'
import { buildApp } from '../../src/app.ts'
import { loadConfig } from '../../src/config/load.ts'
import { createLogger } from '../../src/observability/logger.ts'
import { runServer } from '../../src/serve.ts'

const CHUNK = Buffer.alloc(64 * 1024, 0x61)
const chunks = Number(process.env.SLOW_CHUNKS ?? '20')
const intervalMs = Number(process.env.SLOW_INTERVAL_MS ?? '50')

const { config, secrets } = await loadConfig()
const logger = createLogger({ level: config.log.level, secrets })
const app = await buildApp(config, { logger })
app.get('/slow', async (_request, reply) => {
  async function* body() {
    for (let i = 0; i < chunks; i++) {
      yield CHUNK
      await sleep(intervalMs)
    }
  }
  return reply.header('content-length', String(CHUNK.length * chunks)).send(Readable.from(body()))
})
const server = await runServer(app, config)
process.exit(await server.stopped)
