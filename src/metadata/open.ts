/** Picks the metadata store from the config: Redis when a URL is set, else the embedded one. */
import { join } from 'node:path'
import type { Logger } from '../observability/logger.ts'
import { FsMetadataStore } from './fs-store.ts'
import { RedisMetadataStore } from './redis-store.ts'
import type { MetadataStore } from './store.ts'

export interface MetadataSettings {
  readonly storagePath: string
  readonly redis?:
    | {
        readonly url: string
        readonly keyPrefix: string
        readonly connectTimeoutMs: number
        readonly commandTimeoutMs: number
      }
    | undefined
}

export async function openMetadataStore(
  settings: MetadataSettings,
  logger: Logger,
): Promise<MetadataStore> {
  const log = logger.child({ component: 'metadata' })
  if (settings.redis) return RedisMetadataStore.connect({ ...settings.redis, logger: log })
  return FsMetadataStore.open(join(settings.storagePath, 'meta'), { logger: log })
}
