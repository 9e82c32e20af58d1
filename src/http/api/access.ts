/**
 * `admin.token` on the API and the status page: an onRequest hook that lets a
 * request through only with the token, compared as SHA-256 digests in
 * constant time. Scripts send it as a Bearer token; a browser (the page) as
 * the password of Basic credentials, which it prompts for after the 401.
 */
import { createHash, timingSafeEqual } from 'node:crypto'
import type { FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify'
import { ApiUnauthorizedError } from './errors.ts'

export type AdminScheme = 'bearer' | 'basic'

export function adminGuard(
  token: string | undefined,
  scheme: AdminScheme,
): (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction) => void {
  const expected = token === undefined ? undefined : digestOf(token)
  const challenge = scheme === 'basic' ? 'Basic realm="pullthrough"' : 'Bearer realm="pullthrough"'
  return (request, reply, done) => {
    if (expected === undefined || presented(request, expected)) {
      done()
      return
    }
    void reply.header('www-authenticate', challenge)
    done(new ApiUnauthorizedError())
  }
}

function presented(request: FastifyRequest, expected: Buffer): boolean {
  const header = request.headers.authorization ?? ''
  const bearer = /^Bearer\s+(\S+)\s*$/i.exec(header)?.[1]
  if (bearer !== undefined) return timingSafeEqual(digestOf(bearer), expected)
  const basic = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header)?.[1]
  if (basic === undefined) return false
  // Any user name: the token is the password.
  const decoded = Buffer.from(basic, 'base64').toString('utf8')
  const password = decoded.slice(decoded.indexOf(':') + 1)
  return timingSafeEqual(digestOf(password), expected)
}

function digestOf(text: string): Buffer {
  return createHash('sha256').update(text).digest()
}
