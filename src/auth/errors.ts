/**
 * What a client is told when it may not pull: it must sign in (401, with the
 * challenge of its protocol), or it is signed in and still may not (403).
 * Messages are for clients: they never carry a credential.
 */
import { PullthroughError } from '../errors.ts'

/** No credentials where they are needed, or credentials that do not check out. */
export class AuthRequiredError extends PullthroughError {
  readonly code = 'PT_AUTH_REQUIRED'
  constructor(message = 'authentication required') {
    super(message)
  }
}

/** The client is known (or anonymous where that is allowed) and this pull is not theirs to make. */
export class AccessDeniedError extends PullthroughError {
  readonly code = 'PT_ACCESS_DENIED'
  constructor(message = 'requested access to the resource is denied') {
    super(message)
  }
}

/** An auth file (htpasswd, groups, signing key) cannot be used. */
export class AuthFileError extends PullthroughError {
  readonly code = 'PT_AUTH_FILE'
}

/** A client went over one of its rate limits (limits.requests, limits.upstreamMisses). */
export class RateLimitedError extends PullthroughError {
  readonly code = 'PT_CLIENT_RATE_LIMITED'
  constructor(
    message: string,
    /** When the client may try again. */
    readonly retryAfterSeconds: number,
  ) {
    super(message)
  }
}
