/**
 * Client authentication on the pull routes, each in its client's own flow:
 *
 * - Docker, containerd, skopeo: `/v2/` answers 401 with
 *   `WWW-Authenticate: Bearer realm="<base>/-/token",service="pullthrough"`;
 *   GET /-/token takes Basic credentials (or none, for what anonymous clients
 *   may pull) and answers a short-lived registry token for the scopes the
 *   rules allow; pulls carry it. Basic on every request works too.
 * - pip, uv: Basic on every request; a 401 carries `Basic realm="pullthrough"`.
 *
 * Credentials are checked once per request, in onRequest, for the routes of
 * both protocols; wrong ones are a 401 there. What a request pulls is only
 * known once the protocol routed it, so the protocols call the guard made
 * here. Every refusal is logged (user, client address, what, rule) and counted.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { Logger } from 'pino'
import type { Authenticator, Principal } from '../auth/authenticator.ts'
import { AccessDeniedError, AuthRequiredError } from '../auth/errors.ts'
import { parseAuthorization } from '../auth/identity.ts'
import type { AccessPolicy, PullTarget, Verdict } from '../auth/policy.ts'
import {
  TOKEN_SERVICE,
  parseScope,
  type Grant,
  type RegistryTokens,
} from '../auth/registry-token.ts'
import { isRepositoryName } from '../docker/names.ts'
import { routeRegistry } from '../docker/routing.ts'
import type { RegistryEntry } from '../docker/target.ts'
import type { Metrics } from '../observability/metrics.ts'
import type { PullGuard } from '../pull-guard.ts'

declare module 'fastify' {
  interface FastifyRequest {
    /** Who sent the request; undefined when anonymous or when auth is off. */
    principal?: Principal
  }
}

/** Scopes read from one token request, at most. */
export const MAX_TOKEN_SCOPES = 32

export interface ClientAuthDeps {
  readonly policy: AccessPolicy
  /** Undefined when auth is off: nothing is authenticated, the policy's proxy rules still hold. */
  readonly authenticator: Authenticator | undefined
  readonly tokens: RegistryTokens | undefined
  readonly registries: readonly RegistryEntry[]
  readonly publicUrl: string | undefined
  readonly logger: Logger
  readonly metrics: Metrics
}

const PYPI_CHALLENGE = 'Basic realm="pullthrough"'

/** Installs the credential check and GET /-/token; returns the guard the protocols call. */
export function installClientAuth(app: FastifyInstance, deps: ClientAuthDeps): PullGuard {
  const { authenticator } = deps
  if (authenticator) {
    app.addHook('onRequest', async (request, reply) => {
      const protocol = request.routeOptions.config.protocol
      if (protocol !== 'docker' && protocol !== 'pypi') return
      const credentials = parseAuthorization(request.headers.authorization)
      if (credentials !== undefined) {
        const principal =
          credentials === 'malformed' ? undefined : await authenticator.authenticate(credentials)
        if (!principal) {
          refuse(deps, request, 'credentials', undefined)
          challenge(deps, request, reply, protocol, undefined)
          throw new AuthRequiredError('incorrect username, password or token')
        }
        request.principal = principal
      }
      // The ping says whether this registry wants a token: with auth on, it does.
      const url = request.routeOptions.url
      if (protocol === 'docker' && url === '/v2/' && !request.principal) {
        challenge(deps, request, reply, protocol, undefined)
        throw new AuthRequiredError()
      }
      if (url === '/v2/_catalog' && !isAdmin(deps, request.principal)) {
        refuse(deps, request, 'catalog', undefined)
        if (request.principal) throw new AccessDeniedError('the catalog is for admins')
        challenge(deps, request, reply, protocol, 'registry:catalog:*')
        throw new AuthRequiredError()
      }
    })
    registerTokenRoute(app, deps)
  }
  return (request, reply, target, clientName) => {
    const principal = request.principal
    const verdict = verdictFor(deps, principal, target)
    const scopeName = clientName ?? target.name ?? ''
    if (verdict.allowed) {
      if (!principal?.grants || grants(principal.grants, scopeName)) return
      // A registry token for other names: the client asks for one with this scope.
      refuse(deps, request, 'token scope', target)
      challenge(deps, request, reply, target.protocol, `repository:${scopeName}:pull`)
      throw new AuthRequiredError('the token does not grant pulling this repository')
    }
    refuse(deps, request, verdict.rule, target)
    if (verdict.why === 'proxy')
      throw new AccessDeniedError('this cache does not fetch this name (proxy rules)')
    if (verdict.why === 'forbidden') throw new AccessDeniedError()
    challenge(deps, request, reply, target.protocol, `repository:${scopeName}:pull`)
    throw new AuthRequiredError()
  }
}

/** The rules' answer for `principal`; admin.token passes every rule but the proxy rules. */
function verdictFor(
  deps: ClientAuthDeps,
  principal: Principal | undefined,
  target: PullTarget,
): Verdict {
  return principal?.adminToken
    ? (deps.policy.proxyVerdict(target) ?? { allowed: true })
    : deps.policy.decide(principal?.identity, target)
}

function isAdmin(deps: ClientAuthDeps, principal: Principal | undefined): boolean {
  return principal?.adminToken === true || deps.policy.isAdmin(principal?.identity)
}

function grants(list: readonly Grant[], name: string): boolean {
  return list.some((g) => g.type === 'repository' && g.name === name && g.actions.includes('pull'))
}

/** Where clients reach this server: server.publicUrl, else what the request says. */
function baseUrl(deps: ClientAuthDeps, request: FastifyRequest): string {
  return (deps.publicUrl ?? `${request.protocol}://${request.host}`).replace(/\/+$/, '')
}

function challenge(
  deps: ClientAuthDeps,
  request: FastifyRequest,
  reply: FastifyReply,
  protocol: string,
  scope: string | undefined,
): void {
  if (protocol !== 'docker') {
    void reply.header('www-authenticate', PYPI_CHALLENGE)
    return
  }
  const realm = `${baseUrl(deps, request)}/-/token`
  const scoped = scope === undefined ? '' : `,scope="${scope.replace(/["\\]/g, '')}"`
  void reply.header(
    'www-authenticate',
    `Bearer realm="${realm}",service="${TOKEN_SERVICE}"${scoped}`,
  )
}

/** Logs and counts a refusal; never a credential. */
function refuse(
  deps: ClientAuthDeps,
  request: FastifyRequest,
  rule: string,
  target: PullTarget | undefined,
): void {
  const reason = rule.startsWith('access[')
    ? 'access'
    : rule.startsWith('proxy[')
      ? 'proxy'
      : rule.replace(/ /g, '_').replace(/:/g, '')
  deps.metrics.accessDenied.inc({ protocol: target?.protocol ?? 'docker', reason })
  deps.logger.info(
    {
      user: request.principal?.identity?.name,
      clientIp: request.ip,
      protocol: target?.protocol,
      pool: target?.pool,
      name: target?.name,
      rule,
    },
    'access refused',
  )
}

/** GET /-/token: a registry token for the scopes this client may pull. */
function registerTokenRoute(app: FastifyInstance, deps: ClientAuthDeps): void {
  const { tokens } = deps
  if (!tokens) return
  app.get('/-/token', { config: { protocol: 'docker' } }, async (request, reply) => {
    const query = request.query as { scope?: unknown; service?: unknown }
    if (query.service !== undefined && query.service !== TOKEN_SERVICE)
      throw new AccessDeniedError(`this token service is "${TOKEN_SERVICE}"`)
    const asked = (Array.isArray(query.scope) ? query.scope : [query.scope])
      .filter((s): s is string => typeof s === 'string')
      // Clients may join several scopes with spaces in one parameter.
      .flatMap((s) => s.split(' '))
      .filter(Boolean)
      .slice(0, MAX_TOKEN_SCOPES)
    const principal = request.principal
    const access: Grant[] = []
    for (const scope of asked) {
      const grant = parseScope(scope)
      if (!grant) continue
      if (grant.type === 'registry' && grant.name === 'catalog') {
        if (isAdmin(deps, principal)) access.push({ ...grant, actions: ['*'] })
        continue
      }
      if (grant.type !== 'repository' || !grant.actions.includes('pull')) continue
      const routed = routeRegistry(deps.registries, grant.name, undefined)
      if (!routed || !isRepositoryName(routed.repository)) continue
      const target = {
        protocol: 'docker',
        pool: routed.registry.name,
        name: routed.repository,
      } as const
      const verdict = verdictFor(deps, principal, target)
      if (verdict.allowed) access.push({ type: 'repository', name: grant.name, actions: ['pull'] })
    }
    const token = await tokens.issue(principal?.identity, access, principal?.adminToken === true)
    return reply.header('cache-control', 'no-store').send({
      token,
      access_token: token,
      expires_in: tokens.ttlSeconds,
      issued_at: new Date().toISOString(),
    })
  })
}
