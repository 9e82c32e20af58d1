import t from 'tap'
import { MemoryLru } from '../../src/cache/memory-lru.ts'

const bytes = (n: number) => Buffer.alloc(n, 1)

t.test('holds at most maxBytes, dropping the least recently used first', async (t) => {
  const lru = new MemoryLru(100)
  lru.set('a', bytes(40))
  lru.set('b', bytes(40))
  t.ok(lru.get('a'), 'a is now the most recently used')
  lru.set('c', bytes(40))
  t.equal(lru.get('b'), undefined, 'b was the least recently used and made room')
  t.ok(lru.get('a'))
  t.ok(lru.get('c'))
  t.equal(lru.bytes, 80)
})

t.test(
  'an entry larger than the bound is never held, and replacing keeps the count right',
  async (t) => {
    const lru = new MemoryLru(100)
    lru.set('big', bytes(101))
    t.equal(lru.get('big'), undefined)
    lru.set('a', bytes(30))
    lru.set('a', bytes(50))
    t.equal(lru.bytes, 50)
    lru.delete('a')
    t.equal(lru.bytes, 0)
  },
)
