import { once } from 'node:events'
import { PassThrough, Readable } from 'node:stream'
import t from 'tap'
import { countBytes } from '../../src/observability/count-bytes.ts'
import { drain } from '../helpers/streams.ts'

t.test('passes a body through whole and counts it', async (t) => {
  const chunks = [Buffer.alloc(1000, 1), Buffer.alloc(24, 2)]
  const counted = countBytes(Readable.from(chunks))
  const read = await drain(counted.stream)
  t.equal(read.bytes, 1024)
  t.equal(read.error, undefined)
  t.equal(counted.bytes(), 1024)
})

t.test('a source that fails cuts the counted stream with its error', async (t) => {
  const source = new PassThrough()
  const counted = countBytes(source)
  const reading = drain(counted.stream)
  source.write(Buffer.alloc(100))
  source.destroy(new Error('disk gone'))
  const read = await reading
  t.match(read.error, { message: 'disk gone' })
  t.equal(counted.bytes(), 100, 'counted up to the failure')
})

t.test('a source closed before its end cuts the counted stream', async (t) => {
  const source = new PassThrough()
  const counted = countBytes(source)
  const reading = drain(counted.stream)
  source.write(Buffer.alloc(100))
  // Destroyed without an error: the reader must still not see a body that looks whole.
  source.destroy()
  t.match((await reading).error, { code: 'ERR_STREAM_PREMATURE_CLOSE' })
})

t.test('destroying the counted stream (a client gone) destroys the source', async (t) => {
  const source = new PassThrough()
  const counted = countBytes(source)
  source.write(Buffer.alloc(100))
  const closed = once(source, 'close')
  counted.stream.destroy()
  await closed
  t.ok(source.destroyed, 'what the source holds (a file) is released')
})
