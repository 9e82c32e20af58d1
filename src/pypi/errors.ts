import { PullthroughError } from '../errors.ts'

/**
 * An upstream project page that cannot be used at all: not JSON, the wrong
 * shape, another project's page, or a PEP 629 major version pullthrough does
 * not speak. The caller treats the upstream as failed (next mirror, or 502).
 */
export class ProjectPageInvalidError extends PullthroughError {
  readonly code = 'PT_PYPI_PAGE_INVALID'
  constructor(
    readonly project: string,
    readonly reason: string,
    options?: { cause?: unknown },
  ) {
    super(`the upstream page of ${project} is unusable: ${reason}`, options)
  }
}

/** An upstream document streamed through a parser (the project list, a legacy JSON document) that cannot be read. */
export class UpstreamDocumentInvalidError extends PullthroughError {
  readonly code = 'PT_PYPI_DOCUMENT_INVALID'
  constructor(
    readonly document: string,
    readonly reason: string,
  ) {
    super(`the upstream ${document} is unusable: ${reason}`)
  }
}
