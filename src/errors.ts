/**
 * Base of every typed error in pullthrough. Each layer's errors.ts extends it with
 * a stable `code` (one of ErrorCode), the fields that explain the failure, and
 * `cause`. OUTCOME says what each code means to a client; each protocol turns
 * outcomes into its wire format in one table. Messages must never carry secrets
 * or absolute filesystem paths, since some reach clients.
 */
import type { FastifyReply, FastifyRequest } from 'fastify'

/** Every error code, listed once. */
export type ErrorCode =
  // storage/
  | 'PT_BLOB_CHANGED'
  | 'PT_BLOB_NOT_FOUND'
  | 'PT_BLOB_TOO_LARGE'
  | 'PT_BLOB_WRITER_CLOSED'
  | 'PT_DIGEST_MISMATCH'
  | 'PT_INVALID_DIGEST'
  | 'PT_INVALID_RANGE'
  | 'PT_STORAGE_READ'
  | 'PT_STORAGE_WRITE'
  // metadata/
  | 'PT_METADATA_CLOSED'
  | 'PT_METADATA_CORRUPT'
  | 'PT_METADATA_LOCKED'
  | 'PT_METADATA_UNAVAILABLE'
  // upstream/
  | 'PT_UPSTREAM_ADDRESS_REFUSED'
  | 'PT_UPSTREAM_ATTEMPT'
  | 'PT_UPSTREAM_AUTH'
  | 'PT_UPSTREAM_FOREIGN_URL'
  | 'PT_UPSTREAM_NOT_FOUND'
  | 'PT_UPSTREAM_RATE_LIMITED'
  | 'PT_UPSTREAM_STATUS'
  | 'PT_UPSTREAM_TOKEN'
  | 'PT_UPSTREAM_UNAVAILABLE'
  | 'PT_OFFLINE'
  // cache/
  | 'PT_BLOB_UNKNOWN'
  | 'PT_DOCUMENT_TOO_LARGE'
  | 'PT_FILL_FAILED'
  | 'PT_MANIFEST_NOT_ACCEPTABLE'
  | 'PT_MANIFEST_UNKNOWN'
  | 'PT_PROJECT_UNKNOWN'
  | 'PT_REPOSITORY_UNKNOWN'
  | 'PT_TRANSFER_DISCARDED'
  | 'PT_UPSTREAM_BLOB_TOO_LARGE'
  | 'PT_UPSTREAM_DOCUMENT_UNUSABLE'
  // protocols, config, http
  | 'PT_OCI'
  | 'PT_PYPI_DOCUMENT_INVALID'
  | 'PT_PYPI_PAGE_INVALID'
  | 'PT_PYPI_REQUEST'
  | 'PT_CONFIG_INVALID'
  | 'PT_SYNC_PLAN'
  | 'PT_SYNC_STALE'
  | 'PT_BUNDLE_INVALID'
  | 'PT_BUNDLE_REQUEST'
  | 'PT_SERVER_BUSY'
  | 'PT_API_BAD_QUERY'
  | 'PT_API_UNAUTHORIZED'
  | 'PT_API_FORBIDDEN'
  | 'PT_API_CONFLICT'
  | 'PT_API_NOT_FOUND'
  // auth/
  | 'PT_AUTH_REQUIRED'
  | 'PT_ACCESS_DENIED'
  | 'PT_AUTH_FILE'
  | 'PT_CLIENT_RATE_LIMITED'
  // Only on the wire, in the default JSON error body.
  | 'PT_BAD_REQUEST'
  | 'PT_NOT_FOUND'
  | 'PT_INTERNAL'

/** What an error means to a client, whatever the protocol. */
export type Outcome =
  | 'not_found'
  | 'invalid'
  | 'rate_limited'
  /** The upstream refused our credentials, or denied access. */
  | 'denied'
  /** Try again later: no upstream answered, or the metadata store or the disk failed. */
  | 'unavailable'
  /** The upstream answered, but with something unusable. */
  | 'bad_upstream'
  | 'internal'

/** The outcome of every code; a code without one does not compile. */
export const OUTCOME: Readonly<Record<ErrorCode, Outcome>> = {
  PT_BLOB_CHANGED: 'internal',
  PT_BLOB_NOT_FOUND: 'not_found',
  PT_BLOB_TOO_LARGE: 'internal',
  PT_BLOB_WRITER_CLOSED: 'internal',
  PT_DIGEST_MISMATCH: 'bad_upstream',
  PT_INVALID_DIGEST: 'invalid',
  PT_INVALID_RANGE: 'internal',
  PT_STORAGE_READ: 'unavailable',
  PT_STORAGE_WRITE: 'unavailable',
  PT_METADATA_CLOSED: 'unavailable',
  PT_METADATA_CORRUPT: 'internal',
  PT_METADATA_LOCKED: 'unavailable',
  PT_METADATA_UNAVAILABLE: 'unavailable',
  PT_UPSTREAM_ADDRESS_REFUSED: 'bad_upstream',
  PT_UPSTREAM_ATTEMPT: 'unavailable',
  PT_UPSTREAM_AUTH: 'denied',
  PT_UPSTREAM_FOREIGN_URL: 'bad_upstream',
  PT_UPSTREAM_NOT_FOUND: 'not_found',
  PT_UPSTREAM_RATE_LIMITED: 'rate_limited',
  PT_UPSTREAM_STATUS: 'bad_upstream',
  PT_UPSTREAM_TOKEN: 'denied',
  PT_UPSTREAM_UNAVAILABLE: 'unavailable',
  PT_OFFLINE: 'unavailable',
  PT_BLOB_UNKNOWN: 'not_found',
  PT_DOCUMENT_TOO_LARGE: 'bad_upstream',
  PT_FILL_FAILED: 'bad_upstream',
  PT_MANIFEST_NOT_ACCEPTABLE: 'not_found',
  PT_MANIFEST_UNKNOWN: 'not_found',
  PT_PROJECT_UNKNOWN: 'not_found',
  PT_REPOSITORY_UNKNOWN: 'not_found',
  PT_TRANSFER_DISCARDED: 'bad_upstream',
  PT_UPSTREAM_BLOB_TOO_LARGE: 'bad_upstream',
  PT_UPSTREAM_DOCUMENT_UNUSABLE: 'bad_upstream',
  // Protocol answers carry their own status; this is only their usual kind.
  PT_OCI: 'invalid',
  PT_PYPI_REQUEST: 'invalid',
  PT_PYPI_DOCUMENT_INVALID: 'bad_upstream',
  PT_PYPI_PAGE_INVALID: 'bad_upstream',
  PT_CONFIG_INVALID: 'invalid',
  PT_SYNC_PLAN: 'invalid',
  PT_SYNC_STALE: 'unavailable',
  PT_BUNDLE_INVALID: 'invalid',
  PT_BUNDLE_REQUEST: 'invalid',
  PT_SERVER_BUSY: 'unavailable',
  PT_API_BAD_QUERY: 'invalid',
  PT_API_UNAUTHORIZED: 'denied',
  PT_API_FORBIDDEN: 'denied',
  PT_API_CONFLICT: 'unavailable',
  PT_API_NOT_FOUND: 'not_found',
  // Answered by each protocol with its own challenge (401) or as forbidden (403), before outcomes.
  PT_AUTH_REQUIRED: 'invalid',
  PT_ACCESS_DENIED: 'invalid',
  PT_AUTH_FILE: 'internal',
  PT_CLIENT_RATE_LIMITED: 'rate_limited',
  PT_BAD_REQUEST: 'invalid',
  PT_NOT_FOUND: 'not_found',
  PT_INTERNAL: 'internal',
}

export abstract class PullthroughError extends Error {
  abstract readonly code: ErrorCode

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = new.target.name
  }
}

/** True when `error` is a PullthroughError with one of `codes` (for layers that may not import its class). */
export function hasCode(error: unknown, ...codes: ErrorCode[]): boolean {
  return error instanceof PullthroughError && codes.includes(error.code)
}

/** The outcome of any error: a code's, else `internal`. */
export function outcomeOf(error: unknown): Outcome {
  return error instanceof PullthroughError ? OUTCOME[error.code] : 'internal'
}

/**
 * True for a `denied` error whose upstream answered 403 (access to this content
 * denied): both protocols pass it on as 403. Other `denied` errors (our
 * credentials refused) are 502, never 401, which would send the client to
 * authenticate with pullthrough.
 */
export function isUpstreamForbidden(error: unknown): boolean {
  return outcomeOf(error) === 'denied' && (error as { status?: unknown }).status === 403
}

declare module 'fastify' {
  interface FastifyRequest {
    /** The registry or index a request was routed to, named in its error answers. */
    pool?: string
  }
}

/** How a protocol renders an error for its own routes. */
export type ErrorRenderer = (
  error: unknown,
  request: FastifyRequest,
  reply: FastifyReply,
) => FastifyReply
