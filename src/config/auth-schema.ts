/**
 * The access-control keys: `auth` (who a client is), `access` (who may pull
 * what) and `proxy` (what may be fetched from upstream at all). Names in rules
 * are globs (picomatch: `*` stays within one path segment, `**` crosses them),
 * over registry or index names and over repositories or PyPI projects.
 */
import picomatch from 'picomatch'
import { z } from 'zod'
import { duration } from './fields.ts'

/** What a client without credentials may do on a registry or index. */
export const anonymousAccess = z.enum(['pull', 'none'])

const glob = z
  .string()
  .min(1)
  .superRefine((value, ctx) => {
    try {
      picomatch(value)
    } catch {
      ctx.addIssue({ code: 'custom', message: 'must be a glob like library/* or myorg/**' })
    }
  })

const principal = z.string().min(1).max(256)

/** The `registry`/`repository` or `index`/`project` a rule applies to. */
interface Scoped {
  readonly registry?: string | undefined
  readonly index?: string | undefined
  readonly repository?: string | undefined
  readonly project?: string | undefined
}

/** A rule names a registry or an index (never both), and names inside it only of that kind. */
function oneScope(rule: Scoped, ctx: z.RefinementCtx): void {
  if ((rule.registry === undefined) === (rule.index === undefined))
    ctx.addIssue({
      code: 'custom',
      path: ['registry'],
      message: 'set exactly one of registry, index',
    })
  if (rule.registry === undefined && rule.repository !== undefined)
    ctx.addIssue({ code: 'custom', path: ['repository'], message: 'goes with registry, not index' })
  if (rule.index === undefined && rule.project !== undefined)
    ctx.addIssue({ code: 'custom', path: ['project'], message: 'goes with index, not registry' })
}

const accessRuleSchema = z
  .strictObject({
    registry: glob.optional(),
    index: glob.optional(),
    repository: glob.optional(),
    project: glob.optional(),
    /** User names that may pull; `*` is every signed-in user. */
    users: z.array(principal).default([]),
    groups: z.array(principal).default([]),
    /** Clients without credentials may pull too. */
    anonymous: z.boolean().default(false),
  })
  .superRefine(oneScope)

const proxyRuleSchema = z
  .strictObject({
    registry: glob.optional(),
    index: glob.optional(),
    /** When set, only these names may be fetched from upstream. */
    allow: z.array(glob).optional(),
    /** These names are never fetched, whatever `allow` says. */
    deny: z.array(glob).default([]),
  })
  .superRefine(oneScope)

/** JWTs from an external identity provider (OIDC: CI systems, Kubernetes workloads). */
const jwtSchema = z
  .strictObject({
    /** Where the provider publishes its signing keys (fetched at first use, cached, refetched on an unknown key). */
    jwksUrl: z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' }).optional(),
    /** Or the keys as a file (a JWKS document), re-read when it changes: for sites without the provider's URL. */
    jwksFile: z.string().min(1).optional(),
    /** The `iss` every token must carry. */
    issuer: z.string().min(1),
    /** The `aud` a token must carry (one of these). */
    audience: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]),
    /** The claim that names the user. */
    userClaim: z.string().min(1).default('sub'),
    /** The claim that lists the user's groups (an array, or a string of one). */
    groupsClaim: z.string().min(1).default('groups'),
  })
  .superRefine((jwt, ctx) => {
    if ((jwt.jwksUrl === undefined) === (jwt.jwksFile === undefined))
      ctx.addIssue({
        code: 'custom',
        path: ['jwksUrl'],
        message: 'set exactly one of jwksUrl, jwksFile',
      })
  })

export const authSchema = z.strictObject({
  /** An htpasswd file of bcrypt hashes (`htpasswd -B`); re-read when it changes. */
  htpasswd: z.string().min(1).optional(),
  /** Groups, one per line: `group: user1 user2`; re-read when it changes. */
  groups: z.string().min(1).optional(),
  jwt: jwtSchema.optional(),
  /**
   * PEM file of the EC P-256 private key that signs registry tokens; unset, one
   * is generated once under storage.path (replicas sharing a volume share it).
   */
  signingKey: z.string().min(1).optional(),
  /** How long a registry token from /-/token is valid. */
  tokenTTL: duration('5m').refine(
    (ms) => ms >= 30_000 && ms <= 86_400_000,
    'must be between 30s and 24h',
  ),
  /** Default for every registry and index without its own `anonymous`. */
  anonymous: anonymousAccess.default('none'),
  /** Who may use the admin API and the status page (besides admin.token). */
  admins: z
    .strictObject({
      users: z.array(principal).default([]),
      groups: z.array(principal).default([]),
    })
    .prefault({}),
})

/** First match wins; with auth on, a name no rule matches follows its registry's or index's `anonymous`. */
export const accessSchema = z.array(accessRuleSchema).default([])

/** Every rule whose registry or index matches applies: a deny anywhere wins, then each allow list must match. */
export const proxySchema = z.array(proxyRuleSchema).default([])

/** A budget per client: at most `max` in each `window`; max 0 turns it off. */
function budget(window: string) {
  return z
    .strictObject({
      max: z.number().int().min(0).default(0),
      window: duration(window).refine((ms) => ms >= 1000, 'must be at least 1s'),
    })
    .prefault({})
}

/**
 * Rate limits per client: the signed-in user, or the client address when
 * anonymous. Shared by the replicas through Redis when metadata.redis is set.
 */
export const limitsSchema = z
  .strictObject({
    /** Requests to the pull routes (Docker and PyPI). */
    requests: budget('1s'),
    /** Requests that make pullthrough ask an upstream (misses, revalidations). */
    upstreamMisses: budget('1m'),
  })
  .prefault({})
