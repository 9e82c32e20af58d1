import { PullthroughError } from '../errors.ts'

/** The metadata store did not answer in time or is disconnected. */
export class MetadataUnavailableError extends PullthroughError {
  readonly code = 'PT_METADATA_UNAVAILABLE'
  constructor(
    readonly store: string,
    readonly operation: string,
    options?: { cause?: unknown },
  ) {
    super(`metadata store (${store}) unavailable during ${operation}`, options)
  }
}

/** The metadata store holds data it cannot read (corrupt file, foreign key format). */
export class MetadataCorruptError extends PullthroughError {
  readonly code = 'PT_METADATA_CORRUPT'
  constructor(
    readonly store: string,
    readonly detail: string,
    options?: { cause?: unknown },
  ) {
    super(`metadata store (${store}) is corrupt: ${detail}`, options)
  }
}

/** The store was closed; the caller is shutting down. */
export class MetadataClosedError extends PullthroughError {
  readonly code = 'PT_METADATA_CLOSED'
  constructor(readonly store: string) {
    super(`metadata store (${store}) is closed`)
  }
}

/** Another process already uses this embedded store directory. */
export class MetadataLockedError extends PullthroughError {
  readonly code = 'PT_METADATA_LOCKED'
  constructor(
    readonly pid: number,
    readonly host?: string,
  ) {
    super(
      `embedded metadata store is in use by process ${pid}${host ? ` on ${host}` : ''}; use Redis to share metadata between processes`,
    )
  }
}
