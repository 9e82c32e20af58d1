/**
 * `admin.token` on the API and the status page: an onRequest hook that lets a
 * request through only with the token, compared as SHA-256 digests in
 * constant time. Scripts send it as a Bearer token; a browser (the page) as
 * the password of Basic credentials, which it prompts for after the 401.
 * With `auth` on, the admins it names (auth.admins) get in with their own
 * credentials too, and nobody else does, even when admin.token is unset.
 */
import { createHash, timingSafeEqual } from 'node:crypto'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { parseAuthorization, type Credentials } from '../../auth/identity.ts'
import { ApiUnauthorizedError } from './errors.ts'

export type AdminScheme = 'bearer' | 'basic'

/** With auth on: whether credentials are an admin's. */
export type AdminCheck = (credentials: Credentials) => Promise<boolean>

/** Whether changes through the API are possible at all: someone can be an admin. */
export const adminConfigured = (token: string | undefined, admins: AdminCheck | undefined) =>
  token !== undefined || admins !== undefined

export function adminGuard(
  token: string | undefined,
  scheme: AdminScheme,
  admins?: AdminCheck,
): (request: FastifyRequest, reply: FastifyReply) => Promise<void> {
  const expected = token === undefined ? undefined : digestOf(token)
  const challenge = scheme === 'basic' ? 'Basic realm="pullthrough"' : 'Bearer realm="pullthrough"'
  return async (request, reply) => {
    if (expected === undefined && admins === undefined) return
    if (expected !== undefined && presented(request, expected)) return
    const credentials = parseAuthorization(request.headers.authorization)
    if (admins && typeof credentials === 'object' && (await admins(credentials))) return
    void reply.header('www-authenticate', challenge)
    throw new ApiUnauthorizedError()
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
