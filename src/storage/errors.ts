import { PullthroughError } from '../errors.ts'

/** A string that is not a canonical `sha256:<64 hex>` digest. Raised before any filesystem call. */
export class InvalidDigestError extends PullthroughError {
  readonly code = 'PT_INVALID_DIGEST'
  constructor(readonly digest: string) {
    // Truncate: the value is attacker-controlled and may be huge.
    super(`invalid digest: ${JSON.stringify(digest.slice(0, 100))}`)
  }
}

/** Content did not hash to the digest it was stored or requested under. */
export class DigestMismatchError extends PullthroughError {
  readonly code = 'PT_DIGEST_MISMATCH'
  constructor(
    readonly expected: string,
    readonly actual: string,
    readonly size: number,
  ) {
    super(`digest mismatch: expected ${expected}, got ${actual} (${size} bytes)`)
  }
}

/** The blob is not in the store. */
export class BlobNotFoundError extends PullthroughError {
  readonly code = 'PT_BLOB_NOT_FOUND'
  constructor(readonly digest: string) {
    super(`blob not found: ${digest}`)
  }
}

/** The store could not write (disk full, read-only, permissions). Callers may stream through uncached. */
export class StorageWriteError extends PullthroughError {
  readonly code = 'PT_STORAGE_WRITE'
}

/** The object store failed a read (unreachable, refused, 5xx). The message names the operation and status only. */
export class StorageReadError extends PullthroughError {
  readonly code = 'PT_STORAGE_READ'
}

/** A read range the store cannot serve (negative or fractional offsets). Raised before any filesystem call. */
export class InvalidRangeError extends PullthroughError {
  readonly code = 'PT_INVALID_RANGE'
  constructor(
    readonly start: number | undefined,
    readonly end: number | undefined,
  ) {
    super(`invalid read range: start ${String(start)}, end ${String(end)}`)
  }
}

/**
 * The file at a blob's path was replaced while a verified read was under way, so
 * the hash checked is not of the bytes served. Not a mismatch: the blob on disk
 * may be fine, and must not be quarantined for it.
 */
export class BlobChangedError extends PullthroughError {
  readonly code = 'PT_BLOB_CHANGED'
  constructor(readonly digest: string) {
    super(`blob was replaced during a verified read: ${digest}`)
  }
}

/** commit() on a writer that was already committed or aborted. A caller bug, not a disk fault. */
export class BlobWriterClosedError extends PullthroughError {
  readonly code = 'PT_BLOB_WRITER_CLOSED'
  constructor() {
    super('blob writer is already committed or aborted')
  }
}

/** A blob read whole (readSmall) is larger than the caller allows. */
export class BlobTooLargeError extends PullthroughError {
  readonly code = 'PT_BLOB_TOO_LARGE'
  constructor(
    readonly digest: string,
    readonly size: number,
    readonly maxBytes: number,
  ) {
    super(`blob ${digest} has ${size} bytes, more than the ${maxBytes} allowed`)
  }
}

/** The errno code of a filesystem error (ENOSPC, EROFS...), for messages that must not carry a path. */
export function errorCode(error: unknown): string {
  return (error as { code?: string } | null)?.code ?? 'error'
}
