import { join } from 'node:path'
import t, { type Test } from 'tap'
import { AccessLog } from '../../src/cache/access-log.ts'
import { FsMetadataStore } from '../../src/metadata/fs-store.ts'
import { createLogger } from '../../src/observability/logger.ts'
import { tempDir } from '../helpers/config.ts'
import { LogCapture } from '../helpers/log-capture.ts'

const A = `sha256:${'a'.repeat(64)}`
const B = `sha256:${'b'.repeat(64)}`

async function store(t: Test) {
  const metadata = await FsMetadataStore.open(join(await tempDir(t), 'meta'))
  t.teardown(() => metadata.close())
  await metadata.putBlob(A, 10, 1000)
  await metadata.putBlob(B, 20, 1000)
  // Counts the writes that reach the real store.
  const writes: string[] = []
  const touchBlob = metadata.touchBlob.bind(metadata)
  metadata.touchBlob = (digest, now, hits) => {
    writes.push(digest)
    return touchBlob(digest, now, hits)
  }
  return { metadata, writes }
}

t.test('many hits become one write per blob, with the count and the latest time', async (t) => {
  const { metadata, writes } = await store(t)
  const log = new AccessLog(metadata, createLogger({ level: 'silent' }))
  for (let i = 0; i < 1000; i++) log.record(A, 2000 + i)
  log.record(B, 1500)
  t.same(writes, [], 'nothing is written per hit')
  await log.flush()
  t.same(writes.sort(), [A, B])
  t.match(await metadata.getBlob(A), { hits: 1000, lastAccess: 2999 })
  t.match(await metadata.getBlob(B), { hits: 1, lastAccess: 1500 })
  await log.flush()
  t.equal(writes.length, 2, 'an empty flush writes nothing')
})

t.test('a store that is down loses the batch with one warning, not one per blob', async (t) => {
  const { metadata } = await store(t)
  const logs = new LogCapture()
  const log = new AccessLog(metadata, createLogger({ level: 'info', destination: logs }))
  log.record(A, 2000)
  log.record(B, 2000)
  await metadata.close()
  await log.flush()
  t.equal(logs.lines.filter((l) => l.msg === 'could not record blob accesses').length, 1)
  t.match(logs.lines.at(-1), { dropped: 2 })
})
