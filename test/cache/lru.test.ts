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

t.test('the order of use holds over any mix of gets, sets and deletes', async (t) => {
  // A reference model (an array, most recent last) beside the Lru, over a fixed
  // pseudo-random sequence: repeated gets of the newest key included.
  const lru = new Lru<number>(2, () => 1)
  let model: [string, number][] = []
  let seed = 7
  const next = (n: number) => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31
    return seed % n
  }
  const keys = ['a', 'b', 'c']
  // The first get that differs from the model, if any: one assertion, not one per step.
  let differs: string | undefined
  const check = (step: number, key: string, got: number | undefined, want: number | undefined) => {
    if (differs === undefined && got !== want)
      differs = `step ${step}: get ${key} gave ${got}, the model ${want}`
  }
  for (let step = 0; step < 2000; step++) {
    const key = keys[next(keys.length)] ?? 'a'
    const op = next(10)
    const at = model.findIndex(([k]) => k === key)
    if (op < 5) {
      const held = at < 0 ? undefined : model.splice(at, 1)[0]
      if (held) model.push(held)
      check(step, key, lru.get(key), held?.[1])
      if (op < 2 && held) check(step, key, lru.get(key), held[1])
    } else if (op < 9) {
      if (at >= 0) model.splice(at, 1)
      model.push([key, step])
      lru.set(key, step)
      if (model.length > 2) model = model.slice(-2)
    } else {
      if (at >= 0) model.splice(at, 1)
      lru.delete(key)
    }
  }
  t.equal(differs, undefined, 'every get gave what the model holds')
  t.equal(lru.weight, model.length)
  t.same(
    model.map(([key]) => lru.get(key)),
    model.map(([, value]) => value),
  )
})

t.test('a key used again after another counts as the most recent', async (t) => {
  const lru = new Lru<string>(2, () => 1)
  lru.set('a', 'A')
  lru.set('b', 'B')
  t.equal(lru.get('a'), 'A')
  t.equal(lru.get('b'), 'B', 'b, set last, is used again after a')
  lru.set('c', 'C')
  t.equal(lru.get('a'), undefined, 'a was the least recently used')
  t.equal(lru.get('b'), 'B')
  t.equal(lru.get('b'), 'B', 'asked twice in a row')
  t.equal(lru.get('c'), 'C')
  lru.set('d', 'D')
  t.equal(lru.get('b'), undefined, 'b went before c, used after it')
  t.equal(lru.get('c'), 'C')
})
