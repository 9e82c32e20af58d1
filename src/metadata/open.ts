/**
 * Picks the metadata store from the config: Redis when a URL is set, else the
 * embedded one. The Redis store (and ioredis) is loaded only when configured:
 * a server without Redis does not keep its code in memory.
 */
import { join } from 'node:path'
import type { Logger } from '../observability/logger.ts'
import { FsMetadataStore } from './fs-store.ts'
import type { RedisTarget } from './redis-connection.ts'
import type { MetadataStore } from './store.ts'

export interface MetadataSettings {
  readonly storagePath: string
  readonly redis?:
    | {
        readonly url: string
        readonly sentinels?: RedisTarget['sentinels']
        readonly keyPrefix: string
        readonly connectTimeoutMs: number
        readonly commandTimeoutMs: number
      }
    | undefined
  /** Unused pages and tag records are collected after this long (retention.ts); default its floor. */
  readonly recordRetentionMs?: number
  /** Called when a store call fails, with the store's kind ("fs", "redis") and the operation. */
  readonly onError?: (store: string, operation: string) => void
}

export async function openMetadataStore(
  settings: MetadataSettings,
  logger: Logger,
): Promise<MetadataStore> {
  const log = logger.child({ component: 'metadata' })
  const { recordRetentionMs, onError } = settings
  const report = (store: string) =>
    onError &&
    ((operation: string) => {
      onError(store, operation)
    })
  if (settings.redis) {
    const { RedisMetadataStore } = await import('./redis-store.ts')
    return RedisMetadataStore.connect({
      ...settings.redis,
      logger: log,
      recordRetentionMs,
      onError: report('redis'),
    })
  }
  return FsMetadataStore.open(join(settings.storagePath, 'meta'), {
    logger: log,
    recordRetentionMs,
    onError: report('fs'),
  })
}
