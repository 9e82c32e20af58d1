import { PullthroughError } from '../errors.ts'

/** No upstream has the content (every mirror answered 404). */
export class BlobUnknownUpstreamError extends PullthroughError {
  readonly code = 'PT_BLOB_UNKNOWN'
  constructor(readonly digest: string) {
    super(`no upstream has ${digest}`)
  }
}

/** A fill could not produce verified content from any mirror (corrupt bytes everywhere, too many cuts). */
export class FillFailedError extends PullthroughError {
  readonly code = 'PT_FILL_FAILED'
  constructor(
    readonly digest: string,
    readonly reason: string,
    options?: { cause?: unknown },
  ) {
    super(`could not fetch ${digest}: ${reason}`, options)
  }
}

/** The attempt a reader was receiving was discarded (failed verification, or the disk failed); the reader is cut. */
export class TransferDiscardedError extends PullthroughError {
  readonly code = 'PT_TRANSFER_DISCARDED'
  constructor(
    readonly digest: string,
    readonly reason: 'digest_mismatch' | 'storage_failure',
  ) {
    super(`transfer of ${digest} was discarded (${reason})`)
  }
}
