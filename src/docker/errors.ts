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
