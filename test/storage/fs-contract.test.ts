import { readdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { BlobStore } from '../../src/storage/blob-store.ts'
import { tempDir } from '../helpers/config.ts'
import { blobFile } from './fixtures/disk.ts'
import { storageContract } from './contract.ts'

storageContract(t, async (t) => {
  const root = await tempDir(t)
  const store = await BlobStore.open(root)
  return {
    store,
    committed: async () => {
      const files = await readdir(join(root, 'blobs', 'sha256'), { recursive: true })
      return files
        .map((f) => f.split('/')[1])
        .filter((name) => name !== undefined)
        .map((name) => `sha256:${name}`)
        .sort()
    },
    corrupt: (digest, data) => writeFile(blobFile(root, digest), data),
  }
})
