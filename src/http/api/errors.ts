/** Errors of the JSON API, rendered by the default JSON error handler (`{ error, message }`). */
import { PullthroughError } from '../../errors.ts'

/** A query parameter the endpoint does not take, or a value out of its range. */
export class ApiBadQueryError extends PullthroughError {
  readonly code = 'PT_API_BAD_QUERY'
  readonly status = 400
}

/** `admin.token` is set and the request did not carry it. */
/** A change through the API while `admin.token` is not set: reads may be open, writes never are. */
export class ApiForbiddenError extends PullthroughError {
  readonly code = 'PT_API_FORBIDDEN'
  readonly status = 403
  constructor() {
    super('changes through the API need admin.token to be set in the config')
  }
}

/** What the request names does not exist (a token id). */
export class ApiNotFoundError extends PullthroughError {
  readonly code = 'PT_API_NOT_FOUND'
  readonly status = 404
}

/** The job asked for is already running (here or on another replica). */
export class ApiConflictError extends PullthroughError {
  readonly code = 'PT_API_CONFLICT'
  readonly status = 409
}

export class ApiUnauthorizedError extends PullthroughError {
  readonly code = 'PT_API_UNAUTHORIZED'
  readonly status = 401
  constructor() {
    super(
      'this needs the admin token: "Authorization: Bearer <admin.token>", or it as the password of Basic credentials',
    )
  }
}
