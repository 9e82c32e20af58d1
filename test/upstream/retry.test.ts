import t from 'tap'
import { MAX_RETRY_AFTER_MS, backoffDelayMs, parseRetryAfterMs } from '../../src/upstream/retry.ts'

t.test('backoff grows exponentially up to the cap, with full jitter', async (t) => {
  t.equal(
    backoffDelayMs(0, 100, 5000, () => 0.999),
    99,
  )
  t.equal(
    backoffDelayMs(3, 100, 5000, () => 0.5),
    400,
  )
  t.equal(
    backoffDelayMs(10, 100, 5000, () => 0.5),
    2500,
    'capped at max',
  )
  t.equal(
    backoffDelayMs(5, 100, 5000, () => 0),
    0,
    'jitter reaches zero',
  )
  t.equal(
    backoffDelayMs(1000, 100, 5000, () => 0.5),
    2500,
    'huge attempt numbers do not overflow',
  )
})

t.test('Retry-After in seconds or as an HTTP date', async (t) => {
  const now = Date.parse('2026-01-01T00:00:00Z')
  t.equal(parseRetryAfterMs('2', now), 2000)
  t.equal(parseRetryAfterMs(['3'], now), 3000)
  t.equal(parseRetryAfterMs('Thu, 01 Jan 2026 00:00:05 GMT', now), 5000)
  t.equal(
    parseRetryAfterMs('Wed, 31 Dec 2025 23:59:00 GMT', now),
    0,
    'a date in the past means now',
  )
  t.equal(parseRetryAfterMs('99999', now), MAX_RETRY_AFTER_MS, 'bounded')
  t.equal(parseRetryAfterMs(undefined, now), undefined)
  t.equal(parseRetryAfterMs('soon', now), undefined)
  t.equal(parseRetryAfterMs('-1', now), undefined)
})
