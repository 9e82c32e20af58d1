/** Starts the real app in-process on 127.0.0.1:0 with a temp storage path; closed at test end. */
import type { FastifyInstance } from 'fastify'
import type { Test } from 'tap'
import { buildApp, type AppDeps } from '../../src/app.ts'
import { createLogger } from '../../src/observability/logger.ts'
import { testConfig } from './config.ts'
import { LogCapture } from './log-capture.ts'

export { LogCapture }

export interface TestApp {
  readonly app: FastifyInstance
  readonly url: string
  readonly logs: LogCapture
  readonly dir: string
  readonly storagePath: string
}

/** Builds and listens; `yaml` is a config file body, `deps` replaces parts. */
export async function startApp(
  t: Test,
  options: {
    yaml?: string
    env?: NodeJS.ProcessEnv
    deps?: Partial<AppDeps>
    logLevel?: string
  } = {},
): Promise<TestApp> {
  const { config, secrets, dir } = await testConfig(t, options.yaml ?? '', options.env)
  const logs = new LogCapture()
  const logger = createLogger({ level: options.logLevel ?? 'info', secrets, destination: logs })
  const app = await buildApp(config, { logger, ...options.deps })
  t.teardown(() => app.close())
  const url = await app.listen({ host: '127.0.0.1', port: 0 })
  return { app, url, logs, dir, storagePath: config.storage.path }
}
