/**
 * Child process for the crash test: starts a put into the store at argv[2] from
 * a source that never ends, prints "writing" once the temp file holds bytes,
 * and waits to be killed.
 */
import { readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { BlobStore } from '../../src/storage/blob-store.ts'

const root = process.argv[2] ?? ''
const store = await BlobStore.open(root)

async function* endless(): AsyncGenerator<Buffer> {
  for (;;) {
    yield Buffer.alloc(64 * 1024, 7)
    await sleep(10)
  }
}

void store.put(`sha256:${'ab'.repeat(32)}`, endless()).catch(() => undefined)
for (;;) {
  const files = await readdir(join(root, 'tmp'))
  if (files.length > 0) {
    process.stdout.write('writing\n')
    break
  }
  await sleep(5)
}
await sleep(60_000)
