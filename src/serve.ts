/**
 * Runs a built app as a server: listen, then on SIGTERM/SIGINT stop accepting,
 * let in-flight responses finish for up to server.shutdownTimeout, close the app
 * (and with it Redis and the metadata store), and report the exit code.
 */
import type { FastifyInstance } from 'fastify'
import type { Config } from './config/schema.ts'

/** While draining, idle keep-alive connections are closed this often so they do not hold the exit. */
const IDLE_SWEEP_INTERVAL_MS = 200

export interface RunningServer {
  /** The address actually bound (port 0 picks a free one). */
  readonly url: string
  /** Resolves with the process exit code once the server has shut down. */
  readonly stopped: Promise<number>
  /** Starts a graceful shutdown, as a signal would. */
  shutdown(reason: string): void
}

/** Listens on the configured address and installs signal handlers. */
export async function runServer(app: FastifyInstance, config: Config): Promise<RunningServer> {
  const url = await app.listen({ host: config.server.host, port: config.server.port })
  app.log.info({ url, tls: config.server.tls !== undefined }, 'listening')

  let resolveStopped: (code: number) => void = () => undefined
  const stopped = new Promise<number>((resolve) => {
    resolveStopped = resolve
  })
  let shuttingDown = false

  const shutdown = (reason: string): void => {
    if (shuttingDown) {
      // A second signal means "now": drop the remaining connections.
      app.log.warn({ reason }, 'second shutdown request: closing all connections')
      app.server.closeAllConnections()
      return
    }
    shuttingDown = true
    const boundMs = config.server.shutdownTimeout
    app.log.info({ reason, timeoutMs: boundMs }, 'shutting down: draining in-flight requests')
    const sweep = setInterval(() => {
      app.server.closeIdleConnections()
    }, IDLE_SWEEP_INTERVAL_MS)
    const force = setTimeout(() => {
      app.log.warn(
        { timeoutMs: boundMs },
        'shutdown timeout reached: closing remaining connections',
      )
      app.server.closeAllConnections()
    }, boundMs)
    app
      .close()
      .then(
        () => {
          app.log.info('stopped')
          resolveStopped(0)
        },
        (error: unknown) => {
          app.log.error({ err: error }, 'error while shutting down')
          resolveStopped(1)
        },
      )
      .finally(() => {
        clearInterval(sweep)
        clearTimeout(force)
        process.off('SIGTERM', onSignal)
        process.off('SIGINT', onSignal)
      })
  }
  const onSignal = (signal: NodeJS.Signals): void => {
    shutdown(signal)
  }
  process.on('SIGTERM', onSignal)
  process.on('SIGINT', onSignal)
  return { url, stopped, shutdown }
}
