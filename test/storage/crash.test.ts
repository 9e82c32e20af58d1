import { once } from 'node:events'
import { readdir, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { BlobStore } from '../../src/storage/blob-store.ts'
import { spawnNode } from '../helpers/cli.ts'
import { tempDir } from '../helpers/config.ts'
import { filesUnder } from './fixtures/disk.ts'

const CHILD = fileURLToPath(new URL('./fixtures/slow-put-child.ts', import.meta.url))

t.test('a process killed mid-put leaves no blob, and the next start cleans tmp/', async (t) => {
  const root = await tempDir(t)
  const child = spawnNode(t, CHILD, [root])
  let stderr = ''
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
  const firstLine = new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout }).once('line', resolve)
    child.once('exit', (code) => {
      reject(new Error(`child exited (${String(code)}) before writing: ${stderr}`))
    })
  })
  const progress = JSON.parse(await firstLine) as { tempFile: string; size: number }
  t.ok(progress.size > 0, `the child had written ${progress.size} bytes`)

  child.kill('SIGKILL')
  await once(child, 'exit')
  t.equal(child.signalCode, 'SIGKILL')
  t.same(await filesUnder(join(root, 'blobs')), [], 'no blob')
  t.ok((await stat(progress.tempFile)).size > 0, 'the half-written temp file is still there')

  await BlobStore.open(root)
  t.same(await readdir(join(root, 'tmp')), [], 'tmp/ cleaned at start')
  t.same(await filesUnder(join(root, 'blobs')), [], 'still no blob')
})
