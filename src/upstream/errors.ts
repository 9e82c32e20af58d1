import { PullthroughError } from '../errors.ts'

/** Why one attempt at one mirror failed; also the `reason` label of upstream_errors_total. */
export type FailureReason =
  | 'connect'
  | 'timeout_connect'
  | 'timeout_headers'
  | 'timeout_body'
  | 'timeout_document'
  | 'reset'
  | 'status_5xx'
  | 'status_429'
  | 'status_404'
  | 'auth'
  | 'redirect'
  | 'circuit_open'
  | 'bad_response'
  | 'digest_mismatch'
  /** The body is, or says it is, larger than storage.maxBlobSize. */
  | 'too_large'

export interface AttemptFailure {
  /** Mirror name: its URL without credentials. */
  readonly upstream: string
  readonly reason: FailureReason
  readonly status?: number
}

/** Every mirror of a pool failed; the attempts say how. */
export class UpstreamUnavailableError extends PullthroughError {
  readonly code: 'PT_UPSTREAM_UNAVAILABLE' | 'PT_UPSTREAM_RATE_LIMITED' | 'PT_OFFLINE' =
    'PT_UPSTREAM_UNAVAILABLE'
  constructor(
    readonly pool: string,
    readonly attempts: readonly AttemptFailure[],
    options?: { cause?: unknown },
  ) {
    const summary = attempts
      .map((a) => `${a.upstream}: ${a.reason}${a.status ? ` ${a.status}` : ''}`)
      .join('; ')
    super(`no upstream of ${pool} could answer${summary ? ` (${summary})` : ''}`, options)
  }
}

/** Every mirror that was asked answered 429 (open circuits aside): the client should slow down. */
export class UpstreamRateLimitedError extends UpstreamUnavailableError {
  override readonly code = 'PT_UPSTREAM_RATE_LIMITED'
}

/**
 * The cache is offline: no upstream was asked. An upstream failure like any
 * other to the caches (what is kept is served stale), with its own message.
 */
export class UpstreamOfflineError extends UpstreamUnavailableError {
  override readonly code = 'PT_OFFLINE'
  constructor(pool: string) {
    super(pool, [])
    this.message = `the cache is offline: no upstream of ${pool} is asked`
  }
}

/** True when every attempt that reached a mirror was answered 429. */
export function allRateLimited(attempts: readonly AttemptFailure[]): boolean {
  const asked = attempts.filter((a) => a.reason !== 'circuit_open')
  return asked.length > 0 && asked.every((a) => a.reason === 'status_429')
}

/** The upstream rejected our credentials (or anonymous access) with 401/403. */
export class UpstreamAuthError extends PullthroughError {
  readonly code = 'PT_UPSTREAM_AUTH'
  constructor(
    readonly pool: string,
    readonly upstream: string,
    readonly status: number,
    options?: { cause?: unknown },
  ) {
    super(`${upstream} of ${pool} refused access (${status})`, options)
  }
}

/**
 * 404 or 410: on every mirror asked (`tryNextOnNotFound`), else on the first
 * one that answered. Callers turn it into their own "unknown" error.
 */
export class UpstreamNotFoundError extends PullthroughError {
  readonly code = 'PT_UPSTREAM_NOT_FOUND'
  constructor(
    readonly pool: string,
    /** The request path without its query (presigned URLs carry secrets there). */
    readonly path: string,
    /** The mirror whose answer is reported: the first that said not found. */
    readonly upstream: string,
  ) {
    super(`no upstream of ${pool} has ${path}`)
  }
}

/**
 * A mirror answered with a status the caller cannot use (400, 405, 416, an odd
 * 2xx or 3xx...). It answered, so it is the answer: no other mirror is asked.
 */
export class UpstreamStatusError extends PullthroughError {
  readonly code = 'PT_UPSTREAM_STATUS'
  constructor(
    readonly pool: string,
    readonly upstream: string,
    readonly status: number,
  ) {
    super(`${upstream} of ${pool} answered an unexpected ${status}`)
  }
}

/** One attempt failed in a way that moves on to the next mirror. Internal to the upstream layer. */
export class AttemptError extends PullthroughError {
  readonly code = 'PT_UPSTREAM_ATTEMPT'
  constructor(
    readonly failure: AttemptFailure,
    readonly retryAfterMs?: number,
    options?: { cause?: unknown },
  ) {
    super(
      `${failure.upstream}: ${failure.reason}${failure.status ? ` ${failure.status}` : ''}`,
      options,
    )
  }
}

/** The token server did not give a usable token. */
export class TokenError extends PullthroughError {
  readonly code = 'PT_UPSTREAM_TOKEN'
  constructor(
    message: string,
    readonly status?: number,
  ) {
    super(message)
  }
}

/** A URL built from upstream data (a Link header, a path) would leave the mirror's origin. */
export class ForeignUrlError extends PullthroughError {
  readonly code = 'PT_UPSTREAM_FOREIGN_URL'
  constructor(
    /** The origin the URL pointed at (never its path or query). */
    readonly target: string,
  ) {
    super(`refused a URL on ${target}: not the upstream's origin`)
  }
}

/**
 * Every address of a redirect or token-realm host is of a class the upstream
 * is not on (loopback, link-local, private, ...). Raised at connect time, so a
 * name that resolves differently the second time (DNS rebinding) is caught too.
 */
export class AddressRefusedError extends PullthroughError {
  readonly code = 'PT_UPSTREAM_ADDRESS_REFUSED'
  constructor(readonly hostname: string) {
    super(`refused to connect to ${hostname}: its addresses are not allowed`)
  }
}

/** An upstream document (manifest, tag list) is larger than pullthrough accepts. */
export class DocumentTooLargeError extends PullthroughError {
  readonly code = 'PT_DOCUMENT_TOO_LARGE'
  constructor(
    readonly pool: string,
    readonly size: number,
    readonly maxBytes: number,
  ) {
    super(`an upstream document of ${pool} has ${size} bytes or more, over the ${maxBytes} allowed`)
  }
}
