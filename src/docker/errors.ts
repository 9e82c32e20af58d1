/**
 * OCI distribution error codes and their HTTP statuses (distribution-spec,
 * "Error Codes"), plus the body every Docker route answers errors with:
 * {"errors":[{"code","message","detail"}]}. Defined once, here.
 */
import { AccessDeniedError, AuthRequiredError, RateLimitedError } from '../auth/errors.ts'
import {
  PullthroughError,
  isUpstreamForbidden,
  outcomeOf,
  type ErrorCode,
  type Outcome,
} from '../errors.ts'

export const OCI_ERRORS = {
  BLOB_UNKNOWN: { status: 404, message: 'blob unknown to registry' },
  DIGEST_INVALID: { status: 400, message: 'provided digest did not match uploaded content' },
  MANIFEST_UNKNOWN: { status: 404, message: 'manifest unknown' },
  MANIFEST_INVALID: { status: 400, message: 'manifest invalid' },
  NAME_INVALID: { status: 400, message: 'invalid repository name' },
  NAME_UNKNOWN: { status: 404, message: 'repository name not known to registry' },
  UNAUTHORIZED: { status: 401, message: 'authentication required' },
  DENIED: { status: 403, message: 'requested access to the resource is denied' },
  UNSUPPORTED: { status: 405, message: 'the operation is unsupported' },
  TOOMANYREQUESTS: { status: 429, message: 'too many requests' },
  RANGE_INVALID: { status: 416, message: 'invalid content range' },
  // Not in the OCI spec; Distribution's own codes for a bad `n` and for an unavailable backend.
  PAGINATION_NUMBER_INVALID: { status: 400, message: 'invalid number of results requested' },
  UNAVAILABLE: { status: 503, message: 'service unavailable' },
} as const

export type OciErrorCode = keyof typeof OCI_ERRORS

/** An error answered to a Docker client in the OCI format. `detail` must never hold a secret. */
export class OciError extends PullthroughError {
  readonly code = 'PT_OCI'
  readonly status: number

  constructor(
    readonly ociCode: OciErrorCode,
    readonly detail?: unknown,
    options?: { status?: number; message?: string; cause?: unknown },
  ) {
    super(options?.message ?? OCI_ERRORS[ociCode].message, options)
    this.status = options?.status ?? OCI_ERRORS[ociCode].status
  }

  /** The response body. */
  body(): { errors: { code: string; message: string; detail?: unknown }[] } {
    return {
      errors: [
        {
          code: this.ociCode,
          message: this.message,
          ...(this.detail === undefined ? {} : { detail: this.detail }),
        },
      ],
    }
  }
}

/** How one outcome is told to a Docker client. */
interface OciAnswer {
  readonly oci: OciErrorCode
  readonly status: number
  readonly message: string
  /** Whether `detail` names the registry (for answers about its upstreams). */
  readonly namesRegistry: boolean
}

/** The 7 outcomes on the wire; OCI_BY_CODE refines the code and message where clients tell them apart. */
export const OCI_OUTCOMES: Readonly<Record<Outcome, OciAnswer>> = {
  not_found: {
    oci: 'NAME_UNKNOWN',
    status: 404,
    message: OCI_ERRORS.NAME_UNKNOWN.message,
    namesRegistry: false,
  },
  invalid: { oci: 'UNSUPPORTED', status: 400, message: 'bad request', namesRegistry: false },
  rate_limited: {
    oci: 'TOOMANYREQUESTS',
    status: 429,
    message: 'the upstream registry is rate-limiting pulls; try again later',
    namesRegistry: true,
  },
  // Not a 401: that would send the client to authenticate with pullthrough.
  denied: {
    oci: 'UNAUTHORIZED',
    status: 502,
    message: 'the upstream registry refused our credentials',
    namesRegistry: true,
  },
  unavailable: {
    oci: 'UNAVAILABLE',
    status: 503,
    message: 'the cache is unavailable; try again later',
    namesRegistry: false,
  },
  bad_upstream: {
    oci: 'UNAVAILABLE',
    status: 502,
    message: 'the upstream registry gave no usable answer',
    namesRegistry: true,
  },
  internal: { oci: 'UNAVAILABLE', status: 500, message: 'internal error', namesRegistry: false },
}

type OciRefinement = Partial<Pick<OciAnswer, 'oci' | 'namesRegistry'>> & {
  readonly message?: string | ((error: unknown) => string)
}

/** Codes whose OCI code or message differs from their outcome's. */
const OCI_BY_CODE: Partial<Record<ErrorCode, OciRefinement>> = {
  PT_INVALID_DIGEST: { oci: 'DIGEST_INVALID', message: 'invalid digest' },
  PT_BLOB_UNKNOWN: { oci: 'BLOB_UNKNOWN', message: OCI_ERRORS.BLOB_UNKNOWN.message },
  PT_BLOB_NOT_FOUND: { oci: 'BLOB_UNKNOWN', message: OCI_ERRORS.BLOB_UNKNOWN.message },
  PT_MANIFEST_UNKNOWN: { oci: 'MANIFEST_UNKNOWN', message: OCI_ERRORS.MANIFEST_UNKNOWN.message },
  // What Distribution answers when no representation fits the client's Accept.
  PT_MANIFEST_NOT_ACCEPTABLE: {
    oci: 'MANIFEST_UNKNOWN',
    message: 'the manifest is not available in a media type the client accepts',
  },
  PT_DOCUMENT_TOO_LARGE: {
    oci: 'MANIFEST_INVALID',
    message: 'the upstream sent a document over the size limit (4 MiB)',
  },
  PT_UPSTREAM_UNAVAILABLE: {
    message: 'no upstream of this registry could answer',
    namesRegistry: true,
  },
  PT_OFFLINE: {
    message: 'this cache is offline and does not hold what was asked for',
    namesRegistry: true,
  },
  PT_UPSTREAM_BLOB_TOO_LARGE: {
    message: (error) =>
      `the upstream blob is larger than this cache accepts (storage.maxBlobSize: ${String((error as { maxBytes?: number }).maxBytes)} bytes)`,
  },
  PT_SERVER_BUSY: { message: 'too many open connections; try again later' },
  PT_FILL_FAILED: { message: 'the upstream content could not be verified' },
  PT_UPSTREAM_STATUS: { message: 'the upstream registry answered with an unexpected status' },
  PT_UPSTREAM_DOCUMENT_UNUSABLE: {
    message: 'the upstream registry sent a document that cannot be read',
  },
}

/**
 * Maps any error from the layers below to what a Docker client sees. Only
 * messages written for clients pass through; everything else is a generic 5xx.
 */
export function toOciError(error: unknown, registry: string | undefined): OciError {
  if (error instanceof OciError) return error
  if (error instanceof AuthRequiredError)
    return new OciError('UNAUTHORIZED', undefined, { message: error.message })
  if (error instanceof AccessDeniedError)
    return new OciError('DENIED', undefined, { message: error.message })
  if (error instanceof RateLimitedError)
    return new OciError('TOOMANYREQUESTS', undefined, { message: error.message })
  const where = registry === undefined ? {} : { registry }
  if (isUpstreamForbidden(error))
    return new OciError('DENIED', where, {
      message: 'the upstream registry denied access to this repository',
    })
  const outcome = outcomeOf(error)
  const answer = { ...OCI_OUTCOMES[outcome], ...codeRefinement(error) }
  const message = typeof answer.message === 'function' ? answer.message(error) : answer.message
  return new OciError(answer.oci, answer.namesRegistry ? where : undefined, {
    status: answer.status,
    message,
  })
}

function codeRefinement(error: unknown): OciRefinement | undefined {
  return error instanceof PullthroughError ? OCI_BY_CODE[error.code] : undefined
}
