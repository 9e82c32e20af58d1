/** A ReadThrough over a real blob store and embedded metadata store in a temp dir. */
import { join } from 'node:path'
import { Registry } from 'prom-client'
import type { Test } from 'tap'
import { AccessLog } from '../../src/cache/access-log.ts'
import { ReadThrough } from '../../src/cache/read-through.ts'
import { FsMetadataStore } from '../../src/metadata/fs-store.ts'
import { createLogger } from '../../src/observability/logger.ts'
import { createMetrics, type Metrics } from '../../src/observability/metrics.ts'
import { BlobStore } from '../../src/storage/blob-store.ts'
import { tempDir } from './config.ts'
import { LogCapture } from './log-capture.ts'

export interface TestCache {
  readonly cache: ReadThrough
  readonly blobs: BlobStore
  readonly metadata: FsMetadataStore
  readonly metrics: Metrics
  readonly logs: LogCapture
  readonly root: string
}

export async function testCache(
  t: Test,
  options: { verifyOnRead?: boolean; metrics?: Metrics; root?: string } = {},
): Promise<TestCache> {
  const root = options.root ?? (await tempDir(t))
  const blobs = await BlobStore.open(root)
  // Metadata goes elsewhere: the store root may be a deliberately tiny disk.
  const metadata = await FsMetadataStore.open(join(await tempDir(t), 'meta'))
  t.teardown(() => metadata.close())
  const logs = new LogCapture()
  const metrics = options.metrics ?? createMetrics(new Registry(), { defaultMetrics: false })
  const logger = createLogger({ level: 'debug', destination: logs })
  const cache = new ReadThrough({
    accesses: new AccessLog(metadata, logger),
    blobs,
    metadata,
    metrics,
    logger,
    verifyOnRead: options.verifyOnRead ?? true,
    now: Date.now,
  })
  t.teardown(() => cache.abortFills())
  return { cache, blobs, metadata, metrics, logs, root }
}
