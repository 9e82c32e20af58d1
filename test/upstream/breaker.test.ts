import t from 'tap'
import { CircuitBreaker, type BreakerState } from '../../src/upstream/breaker.ts'

function breaker(failures = 3, cooldownMs = 1000) {
  let now = 0
  const changes: BreakerState[] = []
  const b = new CircuitBreaker({
    failures,
    cooldownMs,
    now: () => now,
    onChange: (s) => changes.push(s),
  })
  return { b, changes, advance: (ms: number) => (now += ms) }
}

t.test('stays closed below the failure threshold and resets on success', async (t) => {
  const { b } = breaker(3)
  b.onFailure()
  b.onFailure()
  b.onSuccess()
  b.onFailure()
  b.onFailure()
  t.equal(b.state, 'closed')
  t.ok(b.tryAcquire())
})

t.test('opens after N consecutive failures and skips the mirror for the cooldown', async (t) => {
  const { b, changes, advance } = breaker(3, 1000)
  for (let i = 0; i < 3; i++) b.onFailure()
  t.equal(b.state, 'open')
  t.same(changes, ['open'])
  t.notOk(b.tryAcquire())
  t.notOk(b.isAvailable())
  advance(999)
  t.equal(b.retryInMs(), 1)
  t.notOk(b.tryAcquire())
})

t.test(
  'after the cooldown exactly one probe goes through and its success closes the circuit',
  async (t) => {
    const { b, changes, advance } = breaker(2, 1000)
    b.onFailure()
    b.onFailure()
    advance(1000)
    t.ok(b.isAvailable())
    t.ok(b.tryAcquire(), 'the probe')
    t.equal(b.state, 'half-open')
    t.notOk(b.tryAcquire(), 'no second request while the probe is out')
    b.onSuccess()
    t.equal(b.state, 'closed')
    t.ok(b.tryAcquire())
    t.same(changes, ['open', 'half-open', 'closed'])
  },
)

t.test('a failed probe re-opens the circuit for another cooldown', async (t) => {
  const { b, advance } = breaker(2, 1000)
  b.onFailure()
  b.onFailure()
  advance(1000)
  t.ok(b.tryAcquire())
  b.onFailure()
  t.equal(b.state, 'open')
  t.equal(b.retryInMs(), 1000)
  t.notOk(b.tryAcquire())
})

t.test('a cancelled probe gives its slot back', async (t) => {
  const { b, advance } = breaker(1, 10)
  b.onFailure()
  advance(10)
  t.ok(b.tryAcquire())
  b.release()
  t.ok(b.tryAcquire())
})
