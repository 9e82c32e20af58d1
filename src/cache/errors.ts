import { PullthroughError } from '../errors.ts'
import {
  UpstreamAuthError,
  UpstreamNotFoundError,
  UpstreamStatusError,
  UpstreamUnavailableError,
} from '../upstream/errors.ts'

// Raised by upstream/fetch-document.ts; the cache's callers know it by this name too.
export { DocumentTooLargeError } from '../upstream/errors.ts'

/** No upstream has the content (every mirror answered 404). */
export class BlobUnknownUpstreamError extends PullthroughError {
  readonly code = 'PT_BLOB_UNKNOWN'
  constructor(readonly digest: string) {
    super(`no upstream has ${digest}`)
  }
}

/** No mirror produced bytes matching the digest (corrupt bytes everywhere, too many cuts). */
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

/**
 * The attempt a reader was receiving was discarded (failed verification, the
 * disk failed, or the body grew past storage.maxBlobSize): the reader is cut.
 * `no_readers`: a pass-through transfer stopped because no client read it.
 */
export class TransferDiscardedError extends PullthroughError {
  readonly code = 'PT_TRANSFER_DISCARDED'
  constructor(
    readonly digest: string,
    readonly reason: 'digest_mismatch' | 'storage_failure' | 'too_large' | 'no_readers',
  ) {
    super(`transfer of ${digest} was discarded (${reason})`)
  }
}

/** Every upstream that had the blob declared or sent more bytes than storage.maxBlobSize allows. */
export class UpstreamBlobTooLargeError extends PullthroughError {
  readonly code = 'PT_UPSTREAM_BLOB_TOO_LARGE'
  constructor(
    readonly digest: string,
    /** The size an upstream declared, or the bytes it had sent when it was cut. */
    readonly size: number,
    readonly maxBytes: number,
  ) {
    super(`${digest} has ${size} bytes or more, over storage.maxBlobSize (${maxBytes} bytes)`)
  }
}

/** Every mirror answered 404 for a manifest (by tag or digest). */
export class ManifestUnknownError extends PullthroughError {
  readonly code = 'PT_MANIFEST_UNKNOWN'
  constructor(
    readonly repository: string,
    readonly reference: string,
  ) {
    super(`no upstream has ${repository}:${reference}`)
  }
}

/** The upstream answered a manifest in a media type the client did not accept. */
export class ManifestNotAcceptableError extends PullthroughError {
  readonly code = 'PT_MANIFEST_NOT_ACCEPTABLE'
  constructor(
    readonly reference: string,
    readonly mediaType: string,
  ) {
    super(`${reference} is only available as ${mediaType}, which the client does not accept`)
  }
}

/** The upstream has no such repository (404 on its tag list). */
export class RepositoryUnknownError extends PullthroughError {
  readonly code = 'PT_REPOSITORY_UNKNOWN'
  constructor(readonly repository: string) {
    super(`no upstream has the repository ${repository}`)
  }
}

/**
 * An upstream document (a tag list, a project list) that answered 200 but
 * cannot be read: the upstream failed to give a usable answer.
 */
export class UpstreamDocumentUnusableError extends PullthroughError {
  readonly code = 'PT_UPSTREAM_DOCUMENT_UNUSABLE'
  constructor(
    readonly document: string,
    readonly reason: string,
    options?: { cause?: unknown },
  ) {
    super(`the upstream ${document} is unusable: ${reason}`, options)
  }
}

/**
 * Errors that mean the upstreams gave no usable answer, as opposed to an answer
 * such as 404: a cached copy may be served stale instead.
 */
const UPSTREAM_FAILURES = [
  UpstreamUnavailableError,
  UpstreamAuthError,
  UpstreamStatusError,
  UpstreamDocumentUnusableError,
  FillFailedError,
]

/** True when `error` says the upstreams failed, so a cached copy may be served stale instead. */
export function isUpstreamFailure(error: unknown): boolean {
  return UPSTREAM_FAILURES.some((failure) => error instanceof failure)
}

/** No upstream of a package index has the project (404), or it was looked up and not found recently. */
export class ProjectUnknownError extends PullthroughError {
  readonly code = 'PT_PROJECT_UNKNOWN'
  constructor(
    readonly index: string,
    readonly project: string,
  ) {
    super(`no upstream of ${index} has the project ${project}`)
  }
}

/** The upstream has no such content (404/410): for the protocol layers, which do not import upstream/. */
export function isNotFound(error: unknown): boolean {
  return error instanceof UpstreamNotFoundError
}
