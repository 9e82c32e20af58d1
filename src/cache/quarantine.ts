/**
 * A stored blob that no longer hashes to its name rotted on disk: it is
 * counted, logged and removed (file and record), so the next request fetches
 * it again. Shared by every reader of the store.
 */
import type { MetadataStore } from '../metadata/store.ts'
import type { Logger } from '../observability/logger.ts'
import type { Metrics } from '../observability/metrics.ts'
import type { BlobStorage } from '../storage/blob-storage.ts'

export interface QuarantineDeps {
  readonly blobs: BlobStorage
  readonly metadata: MetadataStore
  readonly metrics: Metrics
  readonly logger: Logger
}

export async function quarantine(deps: QuarantineDeps, digest: string): Promise<void> {
  deps.metrics.storageCorruptions.inc()
  deps.logger.error({ digest }, 'stored blob does not match its digest; removed')
  await deps.blobs.delete(digest).catch(() => undefined)
  await deps.metadata.deleteBlob(digest).catch(() => undefined)
}
