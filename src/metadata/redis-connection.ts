/**
 * How to reach Redis: one server from `metadata.redis.url`, or through Redis
 * Sentinel (`metadata.redis.sentinels`): the sentinels name the current
 * primary, and after a failover ioredis asks them again and follows the new
 * one (it also listens for the sentinels' switch-master announcements). The
 * URL then gives only the password, user and database. Redis Cluster is not
 * supported: the Lua scripts update keys that would live on several shards.
 */
import { Redis, type RedisOptions } from 'ioredis'

export interface RedisTarget {
  readonly url: string
  readonly sentinels?:
    { readonly masterName: string; readonly addresses: readonly string[] } | undefined
}

/** A client for `target` with `options` (timeouts, retries); not connected until used or connect(). */
export function createRedisClient(target: RedisTarget, options: RedisOptions): Redis {
  const { sentinels } = target
  if (!sentinels) return new Redis(target.url, options)
  const url = new URL(target.url)
  const db = Number(url.pathname.slice(1) || '0')
  return new Redis({
    ...options,
    sentinels: sentinels.addresses.map((address) => {
      const colon = address.lastIndexOf(':')
      return { host: address.slice(0, colon), port: Number(address.slice(colon + 1)) }
    }),
    name: sentinels.masterName,
    db,
    ...(url.username ? { username: decodeURIComponent(url.username) } : {}),
    ...(url.password ? { password: decodeURIComponent(url.password) } : {}),
    ...(url.protocol === 'rediss:' ? { tls: {}, enableTLSForSentinelMode: true } : {}),
    failoverDetector: true,
    // A primary demoted while we were connected answers READONLY: find the new one.
    reconnectOnError: (error: Error) => error.message.startsWith('READONLY'),
    sentinelRetryStrategy: (times: number) => Math.min(times * 100, 1000),
  })
}
