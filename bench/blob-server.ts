/**
 * The process the benchmark measures: the real app (config, blob store,
 * metadata store, metrics, logging) plus a blob route that does what the
 * protocol blob routes do: ReadThrough.serve and stream the result.
 * Env: PULLTHROUGH_* as usual; BENCH_UPSTREAM is the upstream base URL.
 */
import { buildApp } from '../src/app.ts'
import { ReadThrough } from '../src/cache/read-through.ts'
import { loadConfig } from '../src/config/load.ts'
import { createLogger } from '../src/observability/logger.ts'
import { runServer } from '../src/serve.ts'
import { UpstreamPool } from '../src/upstream/pool.ts'

const { config } = await loadConfig()
const logger = createLogger({ level: config.log.level })
const app = await buildApp(config, { logger })
const { blobs, metadata, metrics } = app.deps
const registry = config.docker.registries[0]
if (!registry) throw new Error('bench needs one docker registry in its config')
const pool = new UpstreamPool(registry, { logger, metrics })
const cache = new ReadThrough({
  blobs,
  metadata,
  metrics,
  logger,
  verifyOnRead: config.storage.verifyOnRead,
  now: Date.now,
})

app.get<{ Params: { name: string; digest: string } }>(
  '/bench/:name/:digest',
  async (request, reply) => {
    const served = await cache.serve(request.params.digest, { pool, path: request.params.name })
    if (served.size !== undefined) reply.header('content-length', String(served.size))
    return reply.header('content-type', 'application/octet-stream').send(served.stream)
  },
)

const server = await runServer(app, config)
process.exit(await server.stopped)
