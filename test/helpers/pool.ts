/** Builds upstream pools for tests with short, explicit limits. */
import { Registry } from 'prom-client'
import type { Test } from 'tap'
import type { PoolConfig, UpstreamConfig } from '../../src/config/schema.ts'
import { createLogger } from '../../src/observability/logger.ts'
import { createMetrics, type Metrics } from '../../src/observability/metrics.ts'
import type { MirrorNetwork } from '../../src/upstream/mirror.ts'
import { UpstreamPool } from '../../src/upstream/pool.ts'
import { LogCapture } from './log-capture.ts'

export interface PoolOverrides {
  readonly selection?: PoolConfig['selection']
  readonly timeouts?: Partial<PoolConfig['timeouts']>
  readonly retry?: Partial<PoolConfig['retry']>
  readonly breaker?: Partial<PoolConfig['breaker']>
}

export function poolConfig(
  upstreams: (string | UpstreamConfig)[],
  overrides: PoolOverrides = {},
): PoolConfig {
  return {
    name: 'test-pool',
    upstreams: upstreams.map((u) => (typeof u === 'string' ? { url: u } : u)),
    selection: overrides.selection ?? 'ordered',
    timeouts: {
      connect: 1000,
      headers: 1000,
      bodyIdle: 1000,
      document: 5000,
      ...overrides.timeouts,
    },
    retry: { attempts: 1, backoffBase: 10, backoffMax: 50, budget: 5000, ...overrides.retry },
    breaker: { failures: 5, cooldown: 30_000, ...overrides.breaker },
  }
}

export interface TestPool {
  readonly pool: UpstreamPool
  readonly metrics: Metrics
  readonly logs: LogCapture
  /** Advances the pool's clock (token expiry, breaker cooldown). */
  readonly advance: (ms: number) => void
}

/** A pool with its own metrics registry and captured logs; closed at test end. */
export function testPool(
  t: Test,
  config: PoolConfig,
  options: { fakeClock?: boolean; random?: () => number; network?: MirrorNetwork } = {},
): TestPool {
  const logs = new LogCapture()
  const metrics = createMetrics(new Registry(), { defaultMetrics: false })
  let offset = 0
  const now = options.fakeClock ? () => Date.now() + offset : Date.now
  const pool = new UpstreamPool(config, {
    logger: createLogger({ level: 'debug', destination: logs }),
    metrics,
    now,
    ...(options.random ? { random: options.random } : {}),
    ...(options.network ? { network: options.network } : {}),
  })
  t.teardown(() => pool.close())
  return {
    pool,
    metrics,
    logs,
    advance: (ms) => {
      offset += ms
    },
  }
}

/**
 * A seeded pseudo-random source (mulberry32), so a test of a randomised policy
 * gives the same sequence on every run instead of failing once in a while.
 */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let x = state
    x = Math.imul(x ^ (x >>> 15), x | 1)
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61)
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}

/** The value of a counter or gauge for the given labels (0 when never set). */
export async function metricValue(
  metric: {
    get(): Promise<{
      values: { labels: Partial<Record<string, string | number>>; value: number }[]
    }>
  },
  labels: Record<string, string> = {},
): Promise<number> {
  const { values } = await metric.get()
  return values
    .filter((v) => Object.entries(labels).every(([k, val]) => v.labels[k] === val))
    .reduce((sum, v) => sum + v.value, 0)
}
