/**
 * Rate limits per client (limits.requests, limits.upstreamMisses), counted by
 * @fastify/rate-limit in fixed windows: in memory, or in Redis when
 * metadata.redis is set, so replicas share one count. A client is its
 * signed-in user, else its address; admin.token is never limited. Over a
 * limit: 429 with Retry-After (Docker: TOOMANYREQUESTS). When Redis cannot be
 * asked, requests pass: a limit never stops pulls the cache could serve.
 */
import rateLimit from '@fastify/rate-limit'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { RateLimitedError } from '../auth/errors.ts'
import type { Config } from '../config/schema.ts'
import type { Metrics } from '../observability/metrics.ts'
import { upstreamGates } from '../upstream/request-gate.ts'

/** Bound on one Redis command of the limiter; past it the request passes. */
const REDIS_TIMEOUT_MS = 500

const isPull = (request: FastifyRequest) => {
  const protocol = request.routeOptions.config.protocol
  return protocol === 'docker' || protocol === 'pypi'
}

/** Who a request counts against. */
function clientKey(request: FastifyRequest): string {
  const name = request.principal?.identity?.name
  return name === undefined ? `ip:${request.ip}` : `user:${name}`
}

export async function installRateLimits(
  app: FastifyInstance,
  config: Config,
  metrics: Metrics,
): Promise<void> {
  const { requests, upstreamMisses } = config.limits
  if (requests.max === 0 && upstreamMisses.max === 0) return
  const redisConfig = config.metadata.redis
  // Loaded only when used: a server without Redis does not hold ioredis.
  const redis =
    redisConfig &&
    (await import('../metadata/redis-connection.ts')).createRedisClient(redisConfig, {
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      connectTimeout: redisConfig.connectTimeout,
      commandTimeout: REDIS_TIMEOUT_MS,
    })
  redis?.on('error', () => undefined)
  if (redis)
    app.addHook('onClose', (_instance, done) => {
      redis.disconnect()
      done()
    })
  const exempt = (request: FastifyRequest) =>
    !isPull(request) || request.principal?.adminToken === true
  await app.register(rateLimit, {
    global: requests.max > 0,
    max: requests.max,
    timeWindow: requests.window,
    // After the credentials are checked (onRequest), so a user is one client wherever they pull from.
    hook: 'preHandler',
    keyGenerator: clientKey,
    allowList: exempt,
    skipOnError: true,
    ...(redis ? { redis, nameSpace: `${redisConfig.keyPrefix}rate:` } : {}),
    errorResponseBuilder: (request, context) => {
      metrics.rateLimited.inc({ limit: 'requests' })
      request.log.info({ client: clientKey(request), limit: 'requests' }, 'rate limit reached')
      return new RateLimitedError(
        `too many requests from this client; try again in ${context.after}`,
        Math.ceil(context.ttl / 1000),
      )
    },
  })
  if (upstreamMisses.max === 0) return
  const misses = app.createRateLimit({
    max: upstreamMisses.max,
    timeWindow: upstreamMisses.window,
    keyGenerator: (request) => `miss:${clientKey(request)}`,
    allowList: exempt,
    skipOnError: true,
  })
  // Callback style, so the rest of the request runs inside the gate's context.
  app.addHook('onRequest', (request, _reply, done) => {
    if (!isPull(request)) {
      done()
      return
    }
    const gate = {
      admit: async () => {
        const verdict = await misses(request)
        if (!verdict.isAllowed && verdict.isExceeded) {
          metrics.rateLimited.inc({ limit: 'upstreamMisses' })
          request.log.info(
            { client: clientKey(request), limit: 'upstreamMisses' },
            'rate limit reached',
          )
          throw new RateLimitedError(
            `too many requests from this client need the upstream; try again in ${verdict.ttlInSeconds} s`,
            verdict.ttlInSeconds,
          )
        }
      },
    }
    upstreamGates.run(gate, done)
  })
}
