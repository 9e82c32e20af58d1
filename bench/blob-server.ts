/**
 * The process the benchmark measures: the real app (config, blob store,
 * metadata store, transfer engine, metrics, logging) plus a blob route doing
 * what the protocol blob routes do: ReadThrough.serve, state the pull
 * (reply.pull, so the pull event and its byte counter run as on a real
 * route) and stream the result.
 * Env: PULLTHROUGH_* as usual; the first docker registry is the upstream.
 */
import { buildApp } from '../src/app.ts'
import { loadConfig } from '../src/config/load.ts'
import { createLogger } from '../src/observability/logger.ts'
import { runServer } from '../src/serve.ts'

const { config } = await loadConfig()
const app = await buildApp(config, { logger: createLogger({ level: config.log.level }) })
const [pool] = app.services.registries.values()
if (!pool) throw new Error('bench needs one docker registry in its config')

app.get<{ Params: { name: string; digest: string } }>(
  '/bench/:name/:digest',
  async (request, reply) => {
    const served = await app.services.cache.serve(request.params.digest, {
      pool,
      path: request.params.name,
    })
    if (served.size !== undefined) reply.header('content-length', String(served.size))
    const artifact = {
      protocol: 'docker',
      pool: pool.name,
      subject: request.params.name,
      reference: request.params.digest,
      digest: request.params.digest,
      cache: served.cache,
      upstream: served.upstream,
    } as const
    return reply
      .header('content-type', 'application/octet-stream')
      .sendPull(artifact, served.stream)
  },
)

const server = await runServer(app, config)
process.exit(await server.stopped)
