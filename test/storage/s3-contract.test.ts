import t from 'tap'
import { S3BlobStore } from '../../src/storage/s3-store.ts'
import { parseDigest } from '../../src/storage/digest.ts'
import { tempDir } from '../helpers/config.ts'
import { startS3rver } from '../helpers/s3rver.ts'
import { storageContract } from './contract.ts'

const MiB = 1024 * 1024

t.test('the S3 store keeps the storage contract', async (t) => {
  const s3 = await startS3rver(t)
  let stores = 0
  storageContract(t, async (t) => {
    // Each test its own prefix in the one bucket: nothing it sees is another's.
    const prefix = `test-${++stores}/`
    const store = await S3BlobStore.open({
      client: s3.client,
      bucket: s3.bucket,
      prefix,
      partSizeBytes: 5 * MiB,
      spoolDir: await tempDir(t, 'pt-spool-'),
    })
    return {
      store,
      committed: async () =>
        (await s3.keys(`${prefix}blobs/sha256/`)).map(
          (key) => `sha256:${key.split('/').pop() ?? ''}`,
        ),
      corrupt: (digest, data) => s3.putRaw(store.keyOf(parseDigest(digest)), data),
    }
  })
})
