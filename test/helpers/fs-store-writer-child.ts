/**
 * Child process for the crash test: writes to an embedded metadata store at
 * argv[2] as fast as it can, printing the count of acknowledged writes, until killed.
 * Write i records blob i (digest i, size i, at time i), then touches it once.
 */
import { FsMetadataStore } from '../../src/metadata/fs-store.ts'

const store = await FsMetadataStore.open(process.argv[2] ?? '')
for (let i = 1; ; i++) {
  await store.putBlob(`sha256:${i.toString(16).padStart(64, '0')}`, i, i)
  await store.touchBlob(`sha256:${i.toString(16).padStart(64, '0')}`, i + 1)
  if (i % 50 === 0) process.stdout.write(`${i}\n`)
}
