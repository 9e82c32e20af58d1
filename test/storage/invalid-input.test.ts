import { Readable } from 'node:stream'
import t, { type Test } from 'tap'
import { BlobStore } from '../../src/storage/blob-store.ts'
import { InvalidDigestError, InvalidRangeError } from '../../src/storage/errors.ts'
import { tempDir } from '../helpers/config.ts'
import { randomBlob } from '../helpers/streams.ts'
import { recordingFs } from './fixtures/disk.ts'

const HEX64 = 'a'.repeat(64)
const INVALID = [
  'sha256:../../etc/passwd',
  'sha256:../../../../../../etc/passwd',
  '../x',
  '../../etc/passwd',
  '',
  'sha256:',
  `sha256:${'a'.repeat(63)}`,
  `sha256:${'a'.repeat(65)}`,
  `sha256:${'A'.repeat(64)}`,
  `SHA256:${HEX64}`,
  `sha512:${'a'.repeat(128)}`,
  `sha384:${'a'.repeat(96)}`,
  HEX64,
  `sha256:${'a'.repeat(62)}/x`,
  `sha256:aa/${'a'.repeat(62)}`,
  `sha256:${'a'.repeat(63)}\0`,
  `sha256:${HEX64}\0`,
  `sha256:${HEX64}\n`,
  ` sha256:${HEX64}`,
  `sha256:${'g'.repeat(64)}`,
]

async function recordedStore(t: Test) {
  const calls: string[] = []
  const store = await BlobStore.open(await tempDir(t), { fs: recordingFs(calls) })
  const writer = await store.createWriter()
  t.teardown(() => writer.abort())
  calls.length = 0
  return { store, writer, calls }
}

t.test('invalid digests are rejected before any filesystem call', async (t) => {
  const { store, writer, calls } = await recordedStore(t)
  for (const digest of INVALID) {
    const name = JSON.stringify(digest)
    await t.rejects(store.stat(digest), InvalidDigestError, `stat ${name}`)
    await t.rejects(store.has(digest), InvalidDigestError, `has ${name}`)
    await t.rejects(
      store.put(digest, Readable.from([Buffer.from('x')])),
      InvalidDigestError,
      `put ${name}`,
    )
    await t.rejects(store.createReadStream(digest), InvalidDigestError, `read ${name}`)
    await t.rejects(
      store.createReadStream(digest, { verify: true, start: 0, end: 9 }),
      InvalidDigestError,
    )
    await t.rejects(store.delete(digest), InvalidDigestError, `delete ${name}`)
    await t.rejects(writer.commit(digest), InvalidDigestError, `commit ${name}`)
  }
  t.same(calls, [], 'no filesystem call was made')
})

t.test('a commit refused for an invalid digest leaves the writer usable', async (t) => {
  const { store, writer } = await recordedStore(t)
  const blob = randomBlob(10)
  writer.write(blob.data)
  await t.rejects(writer.commit('sha256:../x'), InvalidDigestError)
  t.same(await writer.commit(blob.digest), { size: 10 })
  t.equal(await store.has(blob.digest), true)
})

t.test('invalid read ranges are rejected before any filesystem call', async (t) => {
  const { store, calls } = await recordedStore(t)
  const digest = `sha256:${HEX64}`
  for (const range of [
    { start: -1 },
    { start: 1.5 },
    { start: Number.NaN },
    { end: 2.5 },
    { end: Number.POSITIVE_INFINITY },
    { start: 2 ** 53 },
  ]) {
    await t.rejects(store.createReadStream(digest, range), InvalidRangeError, JSON.stringify(range))
  }
  t.same(calls, [], 'no filesystem call was made')
})
