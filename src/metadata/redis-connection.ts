/**
 * How to reach Redis: one server from `metadata.redis.url`, or through Redis
 * Sentinel (`metadata.redis.sentinels`): the sentinels name the current
 * primary, and after a failover ioredis asks them again and follows the new
 * one (it also listens for the sentinels' switch-master announcements). The
 * URL then gives only the password, user and database. Redis Cluster is not
 * supported: the Lua scripts update keys that would live on several shards.
 */
import { Redis, type RedisOptions } from 'ioredis'

/** How long a client that ioredis gave up on waits before it connects again. */
const RESTART_DELAY_MS = 1000

/**
 * A client that only ends when it is told to. ioredis gives up for good
 * (status `end`) when a reconnect is cut short: the sentinels' switch-master
 * announcement disconnects the connector while it is still asking a sentinel
 * where the primary is, and that attempt fails without scheduling another.
 * A CI run lost its metadata store that way for the rest of the process.
 * Any end that `disconnect()` did not ask for is followed by a fresh connect.
 */
class LastingRedis extends Redis {
  // No initializer: the constructor below must be free to pick its super call.
  #closing: boolean | undefined

  constructor(options: RedisOptions, url?: string) {
    if (url === undefined) super(options)
    else super(url, options)
    this.on('end', () => {
      if (this.#closing) return
      setTimeout(() => {
        if (this.#closing || this.status !== 'end') return
        // Failures land in the 'error' listener and in the retry strategy, as for any reconnect.
        this.connect().catch(() => undefined)
      }, RESTART_DELAY_MS).unref()
    })
  }

  override disconnect(reconnect = false): void {
    if (!reconnect) this.#closing = true
    super.disconnect(reconnect)
  }
}

export interface RedisTarget {
  readonly url: string
  readonly sentinels?:
    { readonly masterName: string; readonly addresses: readonly string[] } | undefined
}

/**
 * A client for `target` with `options` (timeouts, retries); not connected
 * until used or connect(). It keeps reconnecting until `disconnect()`: a
 * caller closing it calls that, after `quit()` if it wants replies first.
 */
export function createRedisClient(target: RedisTarget, options: RedisOptions): Redis {
  const { sentinels } = target
  if (!sentinels) return new LastingRedis(options, target.url)
  const url = new URL(target.url)
  const db = Number(url.pathname.slice(1) || '0')
  return new LastingRedis({
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
