/**
 * Errors on PyPI routes, as pip and uv show them: plain text by default, JSON
 * for clients that ask for it. Upstream failures name the index, never an
 * upstream address or a secret.
 */
import type { FastifyReply, FastifyRequest } from 'fastify'
import { AccessDeniedError, AuthRequiredError, RateLimitedError } from '../auth/errors.ts'
import {
  PullthroughError,
  isUpstreamForbidden,
  outcomeOf,
  type ErrorCode,
  type ErrorRenderer,
  type Outcome,
} from '../errors.ts'

/** An answer of the PyPI routes themselves (bad name, unknown index, not acceptable). */
export class PypiHttpError extends PullthroughError {
  readonly code = 'PT_PYPI_REQUEST'
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message)
  }
}

type Message = (index: string, error: unknown) => string

/** The 7 outcomes on the wire: the same statuses as the Docker routes give. */
export const PYPI_OUTCOMES: Readonly<Record<Outcome, { status: number; message: Message }>> = {
  not_found: { status: 404, message: () => 'not found' },
  invalid: { status: 400, message: () => 'bad request' },
  rate_limited: {
    status: 429,
    message: (index) =>
      `the upstreams of index ${index} are rate-limiting requests; try again later`,
  },
  denied: {
    status: 502,
    message: (index) => `an upstream of index ${index} refused our credentials`,
  },
  unavailable: { status: 503, message: () => 'the cache is unavailable; try again later' },
  bad_upstream: {
    status: 502,
    message: (index) => `the upstreams of index ${index} gave no usable answer`,
  },
  internal: { status: 500, message: () => 'internal error' },
}

/** Codes whose message says more than their outcome's. */
const MESSAGE_BY_CODE: Partial<Record<ErrorCode, Message>> = {
  PT_PROJECT_UNKNOWN: () => 'project not found',
  PT_BLOB_UNKNOWN: () => 'file not found on any upstream',
  PT_UPSTREAM_UNAVAILABLE: (index) => `no upstream of index ${index} could answer`,
  PT_OFFLINE: (index) =>
    `this cache is offline and does not hold what was asked for (index ${index})`,
  PT_SERVER_BUSY: () => 'too many open connections; try again later',
  PT_UPSTREAM_BLOB_TOO_LARGE: (_index, error) =>
    `the file is larger than this cache accepts (storage.maxBlobSize: ${String((error as { maxBytes?: number }).maxBytes)} bytes)`,
}

/** Status and client-safe message for the errors of the layers below. */
export function describePypiError(
  error: unknown,
  index: string,
): { status: number; message: string } {
  if (error instanceof PypiHttpError) return { status: error.status, message: error.message }
  if (error instanceof AuthRequiredError) return { status: 401, message: error.message }
  if (error instanceof AccessDeniedError) return { status: 403, message: error.message }
  if (error instanceof RateLimitedError) return { status: 429, message: error.message }
  if (isUpstreamForbidden(error))
    return { status: 403, message: `an upstream of index ${index} denied access` }
  const { status, message } = PYPI_OUTCOMES[outcomeOf(error)]
  const refined = error instanceof PullthroughError ? MESSAGE_BY_CODE[error.code] : undefined
  return { status, message: (refined ?? message)(index, error) }
}

export const renderPypiError: ErrorRenderer = (
  error: unknown,
  request: FastifyRequest,
  reply: FastifyReply,
) => {
  const { status, message } = describePypiError(error, request.pool ?? 'unknown')
  if (error instanceof RateLimitedError) void reply.header('retry-after', error.retryAfterSeconds)
  const accept = request.headers.accept ?? ''
  if (/json/i.test(accept)) return reply.code(status).send({ status, message })
  return reply.code(status).type('text/plain; charset=utf-8').send(`${status} ${message}\n`)
}
