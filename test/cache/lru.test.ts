import t from 'tap'
import { Lru } from '../../src/cache/lru.ts'

const bytes = (n: number) => Buffer.alloc(n, 1)

t.test('holds at most maxBytes, dropping the least recently used first', async (t) => {
  const lru = new Lru<Buffer>(100, (b) => b.length)
  lru.set('a', bytes(40))
  lru.set('b', bytes(40))
  t.ok(lru.get('a'), 'a is now the most recently used')
  lru.set('c', bytes(40))
  t.equal(lru.get('b'), undefined, 'b was the least recently used and made room')
  t.ok(lru.get('a'))
  t.ok(lru.get('c'))
  t.equal(lru.weight, 80)
})

t.test(
  'an entry larger than the bound is never held, and replacing keeps the count right',
  async (t) => {
    const lru = new Lru<Buffer>(100, (b) => b.length)
    lru.set('big', bytes(101))
    t.equal(lru.get('big'), undefined)
    lru.set('a', bytes(30))
    lru.set('a', bytes(50))
    t.equal(lru.weight, 50)
    lru.delete('a')
    t.equal(lru.weight, 0)
  },
)

t.test('weighed by count, it holds that many entries', async (t) => {
  const lru = new Lru<string>(2, () => 1)
  lru.set('a', 'A')
  lru.set('b', 'B')
  lru.set('c', 'C')
  t.equal(lru.get('a'), undefined)
  t.equal(lru.get('c'), 'C')
  t.equal(lru.weight, 2)
})
