/**
 * A blob read with a verdict holds the range's last chunk back until the
 * verdict passes: a reader sees every byte but the last chunk while the check
 * runs, all of them once it passed, and a cut body when it failed.
 */
import { open, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { BlobReadStream, type ReadVerdict } from '../../src/storage/blob-read-stream.ts'
import { ReadBuffers } from '../../src/storage/read-buffers.ts'
import { ScavengePacer } from '../../src/storage/scavenge-pacer.ts'
import { tempDir } from '../helpers/config.ts'
import { drain, randomBlob } from '../helpers/streams.ts'

const CHUNK = 64 * 1024
const blob = randomBlob(3 * CHUNK + 1000)

async function reader(t: Test, end: number | undefined, verdict?: ReadVerdict) {
  const path = join(await tempDir(t), 'blob')
  await writeFile(path, blob.data)
  const pacer = new ScavengePacer({ gc: undefined, externalBytes: () => 0 })
  return new BlobReadStream(await open(path), pacer, new ReadBuffers(CHUNK), 0, end, verdict)
}

/** Bytes received until `stream` stops delivering for a while (or ends). */
async function receivedWhileWaiting(stream: BlobReadStream): Promise<number> {
  let bytes = 0
  stream.on('data', (chunk: Buffer) => (bytes += chunk.length))
  await new Promise((resolve) => setTimeout(resolve, 200))
  return bytes
}

t.test('the last chunk waits for the verdict, which is told the bytes read', async (t) => {
  let pass: () => void = () => undefined
  const told: number[] = []
  const stream = await reader(t, blob.data.length - 1, (bytesRead) => {
    told.push(bytesRead)
    return new Promise<void>((resolve) => (pass = resolve))
  })
  const ended = new Promise((resolve) => stream.once('end', resolve))
  t.equal(await receivedWhileWaiting(stream), 3 * CHUNK, 'all but the last chunk, then nothing')
  t.same(told, [blob.data.length], 'asked once, with every byte read')
  pass()
  await ended
  t.pass('ends once the verdict passed')
})

t.test('a failed verdict cuts the body before its last chunk', async (t) => {
  const failure = new Error('mismatch')
  const stream = await reader(t, blob.data.length - 1, () => Promise.reject(failure))
  const read = await drain(stream)
  t.equal(read.error, failure)
  t.equal(read.bytes, 3 * CHUNK)
})

t.test('a file shorter than the range asks the verdict with what there was', async (t) => {
  const told: number[] = []
  const stream = await reader(t, blob.data.length + 5000, (bytesRead) => {
    told.push(bytesRead)
    return Promise.reject(new Error('short'))
  })
  const read = await drain(stream)
  t.same(told, [blob.data.length])
  t.match(read.error, { message: 'short' })
})

t.test('without a verdict every byte flows', async (t) => {
  const read = await drain(await reader(t, undefined))
  t.same(read, { bytes: blob.data.length, digest: blob.digest, error: undefined })
})
