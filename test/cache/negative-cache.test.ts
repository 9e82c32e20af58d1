import t from 'tap'
import { NegativeCache } from '../../src/cache/negative-cache.ts'

t.test('a negative answer is remembered for its TTL, then forgotten', async (t) => {
  const clock = { now: 1000 }
  const cache = new NegativeCache(() => clock.now)
  cache.add('pypi nope', 60_000)
  t.ok(cache.has('pypi nope'))
  t.notOk(cache.has('pypi other'))
  clock.now += 60_000
  t.notOk(cache.has('pypi nope'), 'expired')
  t.equal(cache.size, 0, 'and dropped')
  cache.add('pypi zero', 0)
  t.notOk(cache.has('pypi zero'), 'a zero TTL remembers nothing')
})

t.test('it never holds more than its cap; the oldest answers go first', async (t) => {
  const cache = new NegativeCache(() => 0, 3)
  for (let i = 0; i < 1000; i++) {
    cache.add(`name-${i}`, 60_000)
    if (cache.size > 3) t.fail(`${cache.size} entries after ${i + 1} adds`)
  }
  t.equal(cache.size, 3)
  t.same(
    ['name-996', 'name-997', 'name-998', 'name-999'].map((k) => cache.has(k)),
    [false, true, true, true],
  )
  cache.add('name-997', 60_000)
  cache.add('name-1000', 60_000)
  t.notOk(cache.has('name-998'), 'adding again makes an answer the newest')
  t.ok(cache.has('name-997'))
  cache.delete('name-997')
  t.notOk(cache.has('name-997'))
})
