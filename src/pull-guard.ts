/**
 * What a protocol calls once it knows what a request pulls (registry or index,
 * repository or project), before it touches the cache or an upstream. It
 * throws AuthRequiredError (with the protocol's challenge set on the reply) or
 * AccessDeniedError; http/client-auth.ts makes it from the config's rules.
 */
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { PullTarget } from './auth/policy.ts'

export type PullGuard = (
  request: FastifyRequest,
  reply: FastifyReply,
  target: PullTarget,
  /** The name as the client sent it, which registry tokens grant (Docker only). */
  clientName?: string,
) => void

/** The guard when nothing is restricted. */
export const openGuard: PullGuard = () => undefined
