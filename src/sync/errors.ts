/** Errors of sync lists. */
import { PullthroughError } from '../errors.ts'

/** A list's images or packages cannot be planned: a bad requirement line, an unreadable file. */
export class SyncPlanError extends PullthroughError {
  readonly code = 'PT_SYNC_PLAN'
}

/** Every upstream failed: the cache still has the old answer, but nothing was synced. */
export class SyncUpstreamStaleError extends PullthroughError {
  readonly code = 'PT_SYNC_STALE'
  constructor(what: string) {
    super(`${what}: every upstream failed (the cached copy is kept)`)
  }
}

/** The list runs already: on this replica or on another. */
export class SyncBusyError extends Error {}

/** No list has this name. */
export class SyncUnknownListError extends Error {
  constructor(readonly list: string) {
    super(`no sync list is named "${list}"`)
  }
}
