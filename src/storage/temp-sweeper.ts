/**
 * On a volume shared by replicas, a replica that dies leaves its downloads in
 * tmp/. Every replica removes temp files untouched for STALE_TEMP_MS at start;
 * this sweep does the same while running, so they do not wait for a restart.
 */
import type { Logger } from '../observability/logger.ts'
import type { BlobStorage } from './blob-storage.ts'

/** How often a running replica looks for temp files abandoned by one that died. */
export const STALE_TEMP_SWEEP_MS = 5 * 60_000

export function sweepStaleTemps(
  blobs: BlobStorage,
  logger: Logger,
  intervalMs = STALE_TEMP_SWEEP_MS,
): { close: () => Promise<void> } {
  let running: Promise<void> | undefined
  const timer = setInterval(() => {
    // A slow sweep (a huge tmp/ on a network volume) is never run twice at once.
    running ??= blobs
      .removeStaleTemps()
      .then((removed) => {
        if (removed > 0) logger.info({ removed }, 'removed abandoned temp files')
      })
      .catch((error: unknown) => logger.warn({ err: error }, 'cannot sweep abandoned temp files'))
      .finally(() => (running = undefined))
  }, intervalMs)
  timer.unref()
  return {
    close: async () => {
      clearInterval(timer)
      await running
    },
  }
}
