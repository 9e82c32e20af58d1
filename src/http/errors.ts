/**
 * Typed errors -> HTTP responses, in one place. Protocol adapters register a
 * renderer for their routes (OCI error JSON for Docker, text/JSON for PyPI);
 * everything else gets a small JSON body. Stacks, secrets and filesystem paths
 * never reach a client: 5xx bodies carry only a code and a generic message.
 */
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { PullthroughError } from '../errors.ts'

/** How a protocol renders an error for its own routes. */
export type ErrorRenderer = (
  error: unknown,
  request: FastifyRequest,
  reply: FastifyReply,
) => FastifyReply

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Which protocol a route speaks; selects the error format and metric label. */
    protocol?: string
  }
}

/** Status for an error that carries one (fastify's own errors do), else 500. */
export function statusOf(error: unknown): number {
  const status = (error as Partial<FastifyError> | null)?.statusCode
  return typeof status === 'number' && status >= 400 && status < 600 ? status : 500
}

/** Installs the error and not-found handlers; `renderers` maps a route's protocol to its renderer. */
export function installErrorHandling(
  app: FastifyInstance,
  renderers: ReadonlyMap<string, ErrorRenderer>,
): void {
  app.setErrorHandler((error: unknown, request, reply) => {
    const status = statusOf(error)
    const code = error instanceof PullthroughError ? error.code : undefined
    if (status >= 500) request.log.error({ err: error, code }, 'request failed')
    else request.log.debug({ err: error, code }, 'request rejected')
    const render = renderers.get(request.routeOptions.config.protocol ?? '')
    if (render) return render(error, request, reply)
    const message = status >= 500 ? 'internal error' : messageOf(error)
    return reply
      .code(status)
      .send({ error: code ?? (status >= 500 ? 'PT_INTERNAL' : 'PT_BAD_REQUEST'), message })
  })
  app.setNotFoundHandler((request, reply) =>
    reply.code(404).send({
      error: 'PT_NOT_FOUND',
      message: `no route for ${request.method} ${request.url.split('?')[0] ?? ''}`,
    }),
  )
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : 'bad request'
}
