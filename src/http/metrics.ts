/**
 * GET /metrics and the per-request metrics and log line, with the pull event
 * of a response that served an artifact. Routes are labelled by their template
 * (`/v2/*`), never by the raw URL, to keep cardinality bounded.
 */
import type {
  FastifyInstance,
  FastifyReply,
  FastifyRequest,
  HookHandlerDoneFunction,
} from 'fastify'
import type { Histogram } from 'prom-client'
import type { CounterSeries } from '../observability/batched-counter.ts'
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

  // The label values of a route are the same on every request: each route gets
  // its own onResponse hook, with its series looked up by label once, when the
  // route is added. A global hook would have to ask every request its route
  // (request.routeOptions builds an object). Unmatched requests (Fastify's 404
  // context, which no onRoute sees) are counted by a global hook that does
  // only that. Callback style: no promise per request.
  const respond =
    (route: RouteSeries) =>
    (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction): void => {
      pulls.report(request, reply)
      route.requests(request.method, reply.statusCode).inc()
      route.duration.observe(reply.elapsedTime / 1000)
      const level = route.quiet ? 'debug' : 'info'
      if (logger.isLevelEnabled(level))
        request.log[level](
          {
            method: request.method,
            url: request.url,
            status: reply.statusCode,
            durationMs: Math.round(reply.elapsedTime),
            clientIp: request.ip,
            userAgent: request.headers['user-agent'],
          },
          'request',
        )
      done()
    }
  app.addHook('onRoute', (route) => {
    const hook = respond(routeSeries(metrics, route.config?.protocol, route.url))
    const own = route.onResponse
    route.onResponse = own === undefined ? [hook] : [...(Array.isArray(own) ? own : [own]), hook]
  })
  const unmatched = respond(routeSeries(metrics, undefined, undefined))
  app.addHook('onResponse', (request, reply, done) => {
    if (request.is404) unmatched(request, reply, done)
    else done()
  })
  // After the onRoute hook, as every route must be.
  app.get('/metrics', { config: { protocol: 'ops' } }, async (_request, reply) =>
    reply
      .header('content-type', metrics.registry.contentType)
      .send(await metrics.registry.metrics()),
  )
}

interface RouteSeries {
  /** Probes and scrapes: their request lines are logged at debug. */
  readonly quiet: boolean
  readonly duration: Histogram.Internal<'protocol' | 'route'>
  requests(method: string, status: number): CounterSeries
}

/** One route's series, by its template (`/v2/*`, never the raw URL, to keep cardinality bounded). */
function routeSeries(
  metrics: Metrics,
  protocolName: string | undefined,
  template: string | undefined,
): RouteSeries {
  const protocol = protocolName ?? 'none'
  const route = template ?? 'unmatched'
  // Methods and statuses a route answers are few: Node's parser knows a fixed set of methods.
  const byMethodStatus = new Map<string, CounterSeries>()
  return {
    quiet: QUIET_ROUTES.has(route),
    duration: metrics.httpRequestDuration.labels({ protocol, route }),
    requests(method, status) {
      const key = `${method} ${status}`
      let counter = byMethodStatus.get(key)
      if (counter === undefined) {
        counter = metrics.httpRequests.series({ protocol, route, method, status: String(status) })
        byMethodStatus.set(key, counter)
      }
      return counter
    },
  }
}
