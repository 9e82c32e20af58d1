/**
 * GET /metrics and the per-request metrics and log line, with the pull event
 * of a response that served an artifact. Routes are labelled by their template
 * (`/v2/*`), never by the raw URL, to keep cardinality bounded.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { Logger } from '../observability/logger.ts'
import type { Metrics } from '../observability/metrics.ts'
import type { PullEventFields } from '../observability/pull-event.ts'
import { registerPullEvents } from './pull-events.ts'

/** Routes polled by probes and scrapers: logged at debug, not info, to keep logs readable. */
const QUIET_ROUTES = new Set(['/healthz', '/readyz', '/metrics'])

export function registerMetrics(
  app: FastifyInstance,
  metrics: Metrics,
  logger: Logger,
  onPull?: (event: PullEventFields) => void,
  chunkWritten?: (chunk: unknown) => void,
): void {
  const pulls = registerPullEvents(app, { logger, metrics, onPull, chunkWritten })
  app.get('/metrics', { config: { protocol: 'ops' } }, async (_request, reply) =>
    reply
      .header('content-type', metrics.registry.contentType)
      .send(await metrics.registry.metrics()),
  )

  app.addHook('onResponse', async (request, reply) => {
    pulls.report(request, reply)
    const route = routeLabel(request)
    const protocol = request.routeOptions.config.protocol ?? 'none'
    const seconds = reply.elapsedTime / 1000
    metrics.httpRequests.inc({
      protocol,
      route,
      method: request.method,
      status: String(reply.statusCode),
    })
    metrics.httpRequestDuration.observe({ protocol, route }, seconds)
    const line = {
      method: request.method,
      url: request.url,
      status: reply.statusCode,
      durationMs: Math.round(reply.elapsedTime),
      clientIp: request.ip,
      userAgent: request.headers['user-agent'],
    }
    if (QUIET_ROUTES.has(route)) request.log.debug(line, 'request')
    else request.log.info(line, 'request')
  })
}

function routeLabel(request: FastifyRequest): string {
  return request.routeOptions.url ?? 'unmatched'
}
