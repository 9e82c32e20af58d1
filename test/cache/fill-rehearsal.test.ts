import { mkdir, readdir, utimes, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { rehearseFill } from '../../src/cache/fill-rehearsal.ts'
import { createLogger } from '../../src/observability/logger.ts'
import { tempDir } from '../helpers/config.ts'
import { LogCapture } from '../helpers/log-capture.ts'

function capturedLogger() {
  const capture = new LogCapture()
  return { capture, logger: createLogger({ level: 'debug', destination: capture }) }
}

const MiB = 1024 * 1024

t.test('rehearses one verified fill through a throwaway store and removes it', async (t) => {
  const parent = await tempDir(t)
  // Not a whole number of the upstream's 1 MiB blocks: the digest covers the partial one too,
  // else the fill would refuse the bytes and the rehearsal would fail.
  const bytes = 3 * MiB + 12_345
  const { capture, logger } = capturedLogger()
  const rehearsal = await rehearseFill(parent, logger, bytes)
  t.equal(rehearsal.bytes, bytes, 'every byte went through the fill to the client')
  t.ok(rehearsal.ms > 0 && rehearsal.ms < 30_000, `took ${rehearsal.ms.toFixed(0)} ms`)
  t.same(await readdir(parent), [], 'the temp store is gone')
  t.same(capture.raw, [], 'and its upstream and fill logged nothing (the server logs the outcome)')
})

t.test('fails when it cannot write, and leaves nothing behind', async (t) => {
  const parent = await tempDir(t)
  const { logger } = capturedLogger()
  await t.rejects(rehearseFill(join(parent, 'missing'), logger, MiB), { code: 'ENOENT' })
  t.same(await readdir(parent), [])
})

t.test('removes what a killed rehearsal left, not what a running one writes', async (t) => {
  const parent = await tempDir(t)
  const old = join(parent, '.rehearsal-killed')
  await mkdir(join(old, 'tmp'), { recursive: true })
  await writeFile(join(old, 'tmp', 'partial'), 'x')
  const anHourAgo = new Date(Date.now() - 3_600_000)
  await utimes(old, anHourAgo, anHourAgo)
  // Another replica's, on a shared volume: just created.
  await mkdir(join(parent, '.rehearsal-running'))
  await mkdir(join(parent, 'blobs'))
  const { logger } = capturedLogger()
  await rehearseFill(parent, logger, MiB)
  t.same((await readdir(parent)).sort(), ['.rehearsal-running', 'blobs'])
})
