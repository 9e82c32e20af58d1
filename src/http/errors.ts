/**
 * Typed errors -> HTTP responses, in one place. Protocol adapters register a
 * renderer for their routes (OCI error JSON for Docker, text/JSON for PyPI);
 * everything else gets a small JSON body. Stacks, secrets and filesystem paths
 * never reach a client: 5xx bodies carry only a code and a generic message.
 * Client errors (4xx) are logged at info without a stack: any client can cause
 * them at will, so at error level they would flood logs and trip alerts.
 */
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { PullthroughError, type ErrorRenderer } from '../errors.ts'
import { SECURITY_HEADERS } from './security-headers.ts'

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Which protocol a route speaks; selects the error format and metric label. */
    protocol?: string
  }
}

/** The server is at server.maxConnections: this connection is answered 503 and closed. */
export class ServerBusyError extends PullthroughError {
  readonly code = 'PT_SERVER_BUSY'
  readonly status = 503
  constructor(readonly maxConnections: number) {
    super(`the server is at its limit of ${maxConnections} open connections; try again later`)
  }
}

/**
 * Status for an error that carries one, else 500: fastify's errors have
 * `statusCode`, pullthrough's typed protocol errors `status`.
 */
export function statusOf(error: unknown): number {
  const fields = error as (Partial<FastifyError> & { status?: unknown }) | null
  const status = fields?.statusCode ?? fields?.status
  return typeof status === 'number' && status >= 400 && status < 600 ? status : 500
}

/** Installs the error and not-found handlers; `renderers` maps a route's protocol to its renderer. */
export function installErrorHandling(
  app: FastifyInstance,
  renderers: ReadonlyMap<string, ErrorRenderer>,
): void {
  app.setErrorHandler((error: unknown, request, reply) => {
    const render = renderers.get(request.routeOptions.config.protocol ?? '') ?? renderDefault
    const sent = render(error, request, reply)
    // Logged by the status the client got: a renderer maps lower layers' errors (no status) to 4xx too.
    logFailure(request, error, reply.statusCode)
    return sent
  })
  app.setNotFoundHandler((request, reply) =>
    reply.code(404).send({
      error: 'PT_NOT_FOUND',
      message: `no route for ${request.method} ${request.url.split('?')[0] ?? ''}`,
    }),
  )
}

/**
 * fastify's `frameworkErrors`: URLs its router refuses (bad percent-encoding,
 * an over-long parameter) never reach a route or its hooks, so the headers
 * every response carries are set here.
 */
export function answerFrameworkError(
  error: FastifyError,
  request: FastifyRequest,
  reply: FastifyReply,
): FastifyReply {
  const status = statusOf(error)
  request.log.info({ code: error.code, status, message: error.message }, 'request rejected')
  return reply
    .headers(SECURITY_HEADERS)
    .code(status)
    .send({ error: 'PT_BAD_REQUEST', message: 'the request URL is not valid' })
}

const renderDefault: ErrorRenderer = (error, _request, reply) => {
  const status = statusOf(error)
  const code = error instanceof PullthroughError ? error.code : undefined
  const message =
    error instanceof ServerBusyError || status < 500 ? messageOf(error) : 'internal error'
  return reply
    .code(status)
    .send({ error: code ?? (status >= 500 ? 'PT_INTERNAL' : 'PT_BAD_REQUEST'), message })
}

/** 5xx at error with the stack; shed load at warn; 4xx at info with code, status and message only. */
function logFailure(request: FastifyRequest, error: unknown, status: number): void {
  const code = error instanceof PullthroughError ? error.code : undefined
  if (error instanceof ServerBusyError) {
    request.log.warn({ code, status }, 'request refused: too many open connections')
  } else if (status >= 500) {
    request.log.error({ err: error, code }, 'request failed')
  } else {
    request.log.info({ code, status, message: messageOf(error) }, 'request rejected')
  }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : 'bad request'
}
