/**
 * Read buffers go back to the free list only when given back once, by the
 * holder of a buffer that was lent: a foreign buffer, a second give, or a
 * full free list change nothing, so no two reads can share a buffer.
 */
import t from 'tap'
import { ReadBuffers } from '../../src/storage/read-buffers.ts'

t.test('a buffer given back is taken again; a fresh one otherwise', async (t) => {
  const buffers = new ReadBuffers(1024)
  const first = buffers.take()
  t.ok(first.fresh)
  t.equal(first.buffer.length, 1024)
  buffers.give(first.buffer.subarray(0, 10))
  t.equal(buffers.free, 1, 'a view of it gives back the whole buffer')
  const again = buffers.take()
  t.notOk(again.fresh, 'taken from the free list')
  t.equal(again.buffer.buffer, first.buffer.buffer, 'the same memory')
  t.equal(again.buffer.length, 1024, 'whole again')
})

t.test('nothing comes back twice, and nothing foreign comes in', async (t) => {
  const buffers = new ReadBuffers(1024)
  const { buffer } = buffers.take()
  buffers.give(buffer)
  buffers.give(buffer)
  t.equal(buffers.free, 1, 'a second give of the same buffer is ignored')
  const a = buffers.take()
  const b = buffers.take()
  t.not(a.buffer.buffer, b.buffer.buffer, 'so two takes never share memory')
  buffers.give(Buffer.alloc(1024))
  buffers.give('not a buffer')
  t.equal(buffers.free, 0, 'buffers it did not lend are not kept')
})

t.test('the free list is bounded', async (t) => {
  const buffers = new ReadBuffers(16, 2)
  const taken = [buffers.take(), buffers.take(), buffers.take()]
  for (const { buffer } of taken) buffers.give(buffer)
  t.equal(buffers.free, 2)
})
