/**
 * OCI distribution error codes and their HTTP statuses (distribution-spec,
 * "Error Codes"), plus the body every Docker route answers errors with:
 * {"errors":[{"code","message","detail"}]}. Defined once, here.
 */
import { PullthroughError } from '../errors.ts'

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

/**
 * Maps any error from the layers below to what a Docker client sees. Only
 * messages written for clients pass through; everything else is a generic 5xx.
 */
export function toOciError(error: unknown, registry: string | undefined): OciError {
  if (error instanceof OciError) return error
  const code = (error as { code?: string } | null)?.code
  const where = registry === undefined ? {} : { registry }
  switch (code) {
    case 'PT_INVALID_DIGEST':
      return new OciError('DIGEST_INVALID', undefined, { message: 'invalid digest' })
    case 'PT_BLOB_UNKNOWN':
    case 'PT_BLOB_NOT_FOUND':
      return new OciError('BLOB_UNKNOWN')
    case 'PT_MANIFEST_UNKNOWN':
      return new OciError('MANIFEST_UNKNOWN')
    case 'PT_MANIFEST_NOT_ACCEPTABLE':
      // What Distribution answers when no representation fits the client's Accept.
      return new OciError('MANIFEST_UNKNOWN', undefined, {
        message: 'the manifest is not available in a media type the client accepts',
      })
    case 'PT_REPOSITORY_UNKNOWN':
      return new OciError('NAME_UNKNOWN')
    case 'PT_DOCUMENT_TOO_LARGE':
      return new OciError('MANIFEST_INVALID', where, {
        status: 502,
        message: 'the upstream sent a document over the size limit (4 MiB)',
      })
    case 'PT_UPSTREAM_UNAVAILABLE':
      if (isRateLimited(error as UpstreamFailureFields))
        return new OciError('TOOMANYREQUESTS', where, {
          message: 'the upstream registry is rate-limiting pulls; try again later',
        })
      return new OciError('UNAVAILABLE', where, {
        message: 'no upstream of this registry could answer',
      })
    case 'PT_UPSTREAM_AUTH':
      // Not a 401: that would send the client to authenticate with pullthrough.
      if ((error as UpstreamFailureFields).status === 403)
        return new OciError('DENIED', where, {
          message: 'the upstream registry denied access to this repository',
        })
      return new OciError('UNAUTHORIZED', where, {
        status: 502,
        message: 'the upstream registry refused our credentials',
      })
    case 'PT_UPSTREAM_BLOB_TOO_LARGE':
      return new OciError('UNAVAILABLE', where, {
        status: 502,
        message: `the upstream blob is larger than this cache accepts (storage.maxBlobSize: ${String((error as { maxBytes?: number }).maxBytes)} bytes)`,
      })
    case 'PT_SERVER_BUSY':
      return new OciError('UNAVAILABLE', undefined, {
        message: 'too many open connections; try again later',
      })
    case 'PT_FILL_FAILED':
      return new OciError('UNAVAILABLE', where, {
        status: 502,
        message: 'the upstream content could not be verified',
      })
    case 'PT_UPSTREAM_STATUS':
      return new OciError('UNAVAILABLE', where, {
        status: 502,
        message: 'the upstream registry answered with an unexpected status',
      })
    case 'PT_UPSTREAM_DOCUMENT_UNUSABLE':
      return new OciError('UNAVAILABLE', where, {
        status: 502,
        message: 'the upstream registry sent a document that cannot be read',
      })
    default:
      return new OciError('UNAVAILABLE', undefined, { status: 500, message: 'internal error' })
  }
}

/** The fields of the upstream layer's errors that decide the OCI code (read, not imported). */
interface UpstreamFailureFields {
  readonly status?: number
  readonly attempts?: readonly { readonly reason: string }[]
}

/** Every mirror that was asked answered 429 (open circuits aside). */
function isRateLimited(error: UpstreamFailureFields): boolean {
  const asked = (error.attempts ?? []).filter((a) => a.reason !== 'circuit_open')
  return asked.length > 0 && asked.every((a) => a.reason === 'status_429')
}
