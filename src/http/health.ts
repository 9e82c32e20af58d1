/**
 * Liveness and readiness. /healthz says the process answers; /readyz says it can
 * do its job: the storage path takes writes and the metadata store answers.
 * Kubernetes routes traffic on /readyz, so it must be cheap and bounded.
 */
import type { FastifyInstance } from 'fastify'
import { PullthroughError } from '../errors.ts'

/** Upper bound for one readiness check; a hung disk or store reads as not ready. */
export const READY_CHECK_TIMEOUT_MS = 3000

export interface ReadinessChecks {
  readonly [name: string]: () => Promise<void>
}

export function registerHealthRoutes(app: FastifyInstance, checks: ReadinessChecks): void {
  app.get('/healthz', { config: { protocol: 'ops' } }, async (_request, reply) =>
    reply.header('cache-control', 'no-store').send({ status: 'ok' }),
  )

  app.get('/readyz', { config: { protocol: 'ops' } }, async (request, reply) => {
    const names = Object.keys(checks)
    const results = await Promise.all(names.map(async (name) => runCheck(checks[name])))
    const report = Object.fromEntries(names.map((name, i) => [name, results[i] ?? 'ok']))
    const ready = results.every((result) => result === 'ok')
    if (!ready) request.log.warn({ checks: report }, 'not ready')
    return reply
      .code(ready ? 200 : 503)
      .header('cache-control', 'no-store')
      .send({ status: ready ? 'ready' : 'unavailable', checks: report })
  })
}

/** 'ok', or a short reason safe to show (an error code, never a path or secret). */
async function runCheck(check: (() => Promise<void>) | undefined): Promise<string> {
  if (!check) return 'ok'
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<string>((resolve) => {
    timer = setTimeout(() => {
      resolve(`timed out after ${READY_CHECK_TIMEOUT_MS} ms`)
    }, READY_CHECK_TIMEOUT_MS)
  })
  try {
    return await Promise.race([check().then(() => 'ok'), timeout])
  } catch (error) {
    return error instanceof PullthroughError ? `failed: ${error.code}` : 'failed'
  } finally {
    clearTimeout(timer)
  }
}
