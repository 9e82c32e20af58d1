/**
 * Start-up reconciliation: blobs on disk that the metadata store does not know
 * (a fresh Redis, a deleted meta/ directory, a crash between commit and record)
 * are recorded, so eviction sees every byte it must account for.
 */
import type { MetadataStore } from '../metadata/store.ts'
import type { Logger } from '../observability/logger.ts'
import type { BlobStorage } from '../storage/blob-storage.ts'

export async function reconcileBlobs(
  blobs: BlobStorage,
  metadata: MetadataStore,
  logger: Logger,
): Promise<number> {
  let recorded = 0
  for await (const blob of blobs.list()) {
    if (await metadata.getBlob(blob.digest)) continue
    await metadata.putBlob(blob.digest, blob.size, Math.round(blob.mtimeMs))
    recorded++
  }
  if (recorded > 0)
    logger.info({ recorded }, 'recorded blobs found on disk but missing from the metadata store')
  return recorded
}
