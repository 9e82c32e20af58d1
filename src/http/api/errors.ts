/** Errors of the JSON API, rendered by the default JSON error handler (`{ error, message }`). */
import { PullthroughError } from '../../errors.ts'

/** A query parameter the endpoint does not take, or a value out of its range. */
export class ApiBadQueryError extends PullthroughError {
  readonly code = 'PT_API_BAD_QUERY'
  readonly status = 400
}

/** `admin.token` is set and the request did not carry it. */
export class ApiUnauthorizedError extends PullthroughError {
  readonly code = 'PT_API_UNAUTHORIZED'
  readonly status = 401
  constructor() {
    super(
      'this needs the admin token: "Authorization: Bearer <admin.token>", or it as the password of Basic credentials',
    )
  }
}
