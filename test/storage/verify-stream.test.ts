import { Readable, Writable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import t from 'tap'
import { digestOf, type Digest } from '../../src/storage/digest.ts'
import { DigestMismatchError } from '../../src/storage/errors.ts'
import { createVerifyStream, hashStream } from '../../src/storage/verify-stream.ts'
import { randomBlob } from '../helpers/streams.ts'

/** Pipes `chunks` through `transform`; returns what came out and how it ended. */
async function through(chunks: Buffer[], transform: NodeJS.ReadWriteStream) {
  const out: Buffer[] = []
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      out.push(chunk)
      callback()
    },
  })
  const error = await pipeline(Readable.from(chunks), transform, sink).then(
    () => undefined,
    (e: unknown) => e,
  )
  return { out: Buffer.concat(out), error }
}

const blob = randomBlob(300_000)
const chunks = [
  blob.data.subarray(0, 100_000),
  blob.data.subarray(100_000, 250_000),
  blob.data.subarray(250_000),
]
const wrong = digestOf('something else')

t.test('matching content passes through whole', async (t) => {
  const { out, error } = await through(chunks, createVerifyStream(blob.digest as Digest))
  t.equal(error, undefined)
  t.ok(out.equals(blob.data))
})

t.test('empty content matches the digest of nothing', async (t) => {
  const { out, error } = await through([], createVerifyStream(digestOf('')))
  t.same({ bytes: out.length, error }, { bytes: 0, error: undefined })
})

t.test('a mismatch errors and withholds the last chunk', async (t) => {
  const { out, error } = await through(chunks, createVerifyStream(wrong))
  t.type(error, DigestMismatchError)
  t.match(error, { expected: wrong, actual: blob.digest, size: blob.data.length })
  t.ok(out.equals(blob.data.subarray(0, 250_000)), 'everything but the last chunk')
})

t.test('a mismatch in a one-chunk body delivers nothing', async (t) => {
  const { out, error } = await through([blob.data], createVerifyStream(wrong))
  t.type(error, DigestMismatchError)
  t.equal(out.length, 0)
})

t.test('trailing empty chunks do not release the last bytes before the verdict', async (t) => {
  const { out, error } = await through(
    [...chunks, Buffer.alloc(0), Buffer.alloc(0)],
    createVerifyStream(wrong),
  )
  t.type(error, DigestMismatchError)
  t.equal(out.length, 250_000)
})

t.test('hashStream gives the digest and size of a stream', async (t) => {
  t.same(await hashStream(Readable.from(chunks)), { digest: blob.digest, size: 300_000 })
  t.same(await hashStream(Readable.from([])), { digest: digestOf(''), size: 0 })
})
