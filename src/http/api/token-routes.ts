/**
 * API tokens through the admin API (docs/api.md): `GET /-/api/v1/tokens`
 * lists them (never a secret, never a hash beyond the id), `POST` makes one
 * and answers its secret once, `DELETE /-/api/v1/tokens/<id>` revokes one.
 * Admins only; with auth off there is nothing a token could sign in to.
 */
import type { FastifyInstance } from 'fastify'
import { z } from 'zod'
import { PRINCIPAL, type ApiTokens } from '../../auth/api-tokens.ts'
import { parseDuration } from '../../config/units.ts'
import type { ApiTokenRecord } from '../../metadata/store.ts'
import { adminConfigured, adminGuard, type AdminCheck } from './access.ts'
import { ApiBadQueryError, ApiForbiddenError, ApiNotFoundError } from './errors.ts'
import { API_PREFIX } from './routes.ts'

/** The longest validity a token may be given. */
const MAX_VALID_FOR_MS = 10 * 365 * 86_400_000
const MAX_GROUPS = 64

export interface TokenApiDeps {
  readonly token: string | undefined
  readonly admins?: AdminCheck | undefined
  /** Undefined when auth is off. */
  readonly apiTokens: ApiTokens | undefined
}

const principal = z.string().regex(PRINCIPAL, 'must be 1-256 characters without ":" or spaces')
const createBody = z.strictObject({
  user: principal,
  groups: z.array(principal).max(MAX_GROUPS).default([]),
  description: z.string().max(1024).default(''),
  /** A duration like 90d; absent: until revoked. */
  expiresIn: z.string().optional(),
})

/** A record as the API shows it: the id names it, the hash stays inside. */
export function describeToken(record: ApiTokenRecord) {
  return {
    id: record.id,
    user: record.user,
    groups: record.groups,
    description: record.description,
    createdAt: new Date(record.createdAt).toISOString(),
    expiresAt: record.expiresAt === undefined ? null : new Date(record.expiresAt).toISOString(),
  }
}

export function registerTokenApi(app: FastifyInstance, deps: TokenApiDeps): void {
  const route = { config: { protocol: 'api' } }
  const tokens = (): ApiTokens => {
    if (!adminConfigured(deps.token, deps.admins)) throw new ApiForbiddenError()
    if (!deps.apiTokens)
      throw new ApiBadQueryError('API tokens sign clients in only when auth is configured')
    return deps.apiTokens
  }
  void app.register(
    (api, _options, done) => {
      api.addHook('onRequest', adminGuard(deps.token, 'bearer', deps.admins))
      api.get('/', route, async () => ({ items: (await tokens().list()).map(describeToken) }))
      api.post('/', route, async (request, reply) => {
        const apiTokens = tokens()
        const body = createBody.safeParse(request.body ?? {})
        if (!body.success) {
          const issue = body.error.issues[0]
          throw new ApiBadQueryError(
            `${issue?.path.join('.') ?? 'body'}: ${issue?.message ?? 'invalid'}`,
          )
        }
        const { expiresIn, ...spec } = body.data
        const validForMs = expiresIn === undefined ? undefined : parseDuration(expiresIn)
        if (
          validForMs === 0 ||
          (validForMs ?? 0) > MAX_VALID_FOR_MS ||
          (expiresIn !== undefined && validForMs === undefined)
        )
          throw new ApiBadQueryError('expiresIn: must be a duration like 30d, up to 10 years')
        const made = await apiTokens.create({
          ...spec,
          ...(validForMs === undefined ? {} : { validForMs }),
        })
        request.log.info({ id: made.record.id, user: made.record.user }, 'API token created')
        return reply.code(201).send({ ...describeToken(made.record), token: made.token })
      })
      api.delete('/:id', route, async (request, reply) => {
        const { id } = request.params as { id: string }
        if (!(await tokens().revoke(id))) throw new ApiNotFoundError(`no token has the id ${id}`)
        request.log.info({ id }, 'API token revoked')
        return reply.code(204).send()
      })
      done()
    },
    { prefix: `${API_PREFIX}/tokens` },
  )
}
