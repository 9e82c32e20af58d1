/**
 * Errors on PyPI routes, as pip and uv show them: plain text by default, JSON
 * for clients that ask for it. Upstream failures name the index, never an
 * upstream address or a secret.
 */
import type { FastifyReply, FastifyRequest } from 'fastify'
import { PullthroughError } from '../errors.ts'
import type { ErrorRenderer } from '../http/errors.ts'

declare module 'fastify' {
  interface FastifyRequest {
    /** The index a PyPI request was routed to, for error messages. */
    pypiIndex?: string
  }
}

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

/** Status and client-safe message for the errors of the layers below. */
function describe(error: unknown, index: string): { status: number; message: string } {
  if (error instanceof PypiHttpError) return { status: error.status, message: error.message }
  switch ((error as { code?: string } | null)?.code) {
    case 'PT_PROJECT_UNKNOWN':
      return { status: 404, message: 'project not found' }
    case 'PT_BLOB_UNKNOWN':
      return { status: 404, message: 'file not found on any upstream' }
    case 'PT_UPSTREAM_UNAVAILABLE':
      return { status: 503, message: `no upstream of index ${index} could answer` }
    case 'PT_SERVER_BUSY':
      return { status: 503, message: 'too many open connections; try again later' }
    case 'PT_UPSTREAM_AUTH':
      return { status: 502, message: `an upstream of index ${index} refused our credentials` }
    case 'PT_UPSTREAM_BLOB_TOO_LARGE':
      return {
        status: 502,
        message: `the file is larger than this cache accepts (storage.maxBlobSize: ${String((error as { maxBytes?: number }).maxBytes)} bytes)`,
      }
    case 'PT_FILL_FAILED':
    case 'PT_UPSTREAM_STATUS':
    case 'PT_UPSTREAM_DOCUMENT_UNUSABLE':
    case 'PT_PYPI_PAGE_INVALID':
    case 'PT_PYPI_DOCUMENT_INVALID':
    case 'PT_DOCUMENT_TOO_LARGE':
      return { status: 502, message: `the upstreams of index ${index} gave no usable answer` }
    default:
      return { status: 500, message: 'internal error' }
  }
}

export const renderPypiError: ErrorRenderer = (
  error: unknown,
  request: FastifyRequest,
  reply: FastifyReply,
) => {
  const { status, message } = describe(error, request.pypiIndex ?? 'unknown')
  const accept = request.headers.accept ?? ''
  if (/json/i.test(accept)) return reply.code(status).send({ status, message })
  return reply.code(status).type('text/plain; charset=utf-8').send(`${status} ${message}\n`)
}
