/**
 * Builds access control from the config, once at start, in two steps: the
 * files first (htpasswd, groups and a JWKS file, re-read on change, and the
 * signing key),
 * before anything else is opened, so a file that cannot be used fails the
 * start with a message naming its key; then, with the metadata store, the
 * policy (always: proxy rules hold without auth), the registry tokens, the API
 * tokens and the authenticator.
 */
import type { Config } from '../config/schema.ts'
import { ApiTokens, type ApiTokenStore } from './api-tokens.ts'
import { Authenticator } from './authenticator.ts'
import { ExternalJwt, parseJwks } from './external-jwt.ts'
import { HtpasswdUsers, parseGroups, parseHtpasswd } from './htpasswd.ts'
import { AccessPolicy } from './policy.ts'
import { RegistryTokens } from './registry-token.ts'
import { loadSigningKey, type SigningKey } from './signing-key.ts'
import { WatchedFile } from './watched-file.ts'

interface Warner {
  warn(obj: object, msg: string): void
  info(obj: object, msg: string): void
}

export interface ClientAuth {
  readonly policy: AccessPolicy
  readonly authenticator: Authenticator | undefined
  readonly tokens: RegistryTokens | undefined
  /** Undefined when auth is off. */
  readonly apiTokens: ApiTokens | undefined
}

/** What the auth files hold; undefined when auth is off. */
export interface AuthFiles {
  readonly htpasswd: HtpasswdUsers | undefined
  readonly key: SigningKey
  readonly externalJwt: ExternalJwt | undefined
}

export function buildClientAuth(
  config: Config,
  files: AuthFiles | undefined,
  store: ApiTokenStore,
  now: () => number,
): ClientAuth {
  const anonymous = new Map(
    [...config.docker.registries, ...config.pypi.indexes].flatMap((pool) =>
      pool.anonymous === undefined ? [] : [[pool.name, pool.anonymous] as const],
    ),
  )
  const policy = new AccessPolicy({
    auth: config.auth,
    access: config.access,
    proxy: config.proxy,
    anonymous,
  })
  const { auth } = config
  if (!auth || !files)
    return { policy, authenticator: undefined, tokens: undefined, apiTokens: undefined }
  const tokens = new RegistryTokens(files.key, auth.tokenTTL, now)
  const apiTokens = new ApiTokens(store, now)
  const authenticator = new Authenticator(
    files.htpasswd,
    tokens,
    config.admin.token,
    apiTokens,
    files.externalJwt,
  )
  return { policy, authenticator, tokens, apiTokens }
}

/** Reads the auth files of the config; undefined when auth is off. */
export async function loadAuthFiles(
  config: Config,
  logger: Warner,
  now: () => number,
): Promise<AuthFiles | undefined> {
  const { auth } = config
  if (!auth) return undefined
  const watch = async <T>(path: string | undefined, key: string, parse: (text: string) => T) =>
    path === undefined
      ? undefined
      : WatchedFile.open({
          path,
          key,
          parse,
          now,
          onReloaded: () => logger.info({ file: key }, 'auth file reloaded'),
          onReloadFailed: (error) =>
            logger.warn(
              { file: key, reason: error.message },
              'auth file changed but cannot be used; keeping the previous one',
            ),
        })
  const [users, groups, key, jwks] = await allSettledOrFirstError([
    watch(auth.htpasswd, 'auth.htpasswd', parseHtpasswd),
    watch(auth.groups, 'auth.groups', parseGroups),
    loadSigningKey(auth.signingKey, config.storage.path),
    watch(auth.jwt?.jwksFile, 'auth.jwt.jwksFile', parseJwks),
  ])
  const { jwt } = auth
  const externalJwt =
    jwt &&
    new ExternalJwt(
      jwt,
      jwks ? { file: () => jwks.current() } : { url: new URL(jwt.jwksUrl ?? '') },
      now,
    )
  const noGroups = new Map<string, string[]>()
  const htpasswd =
    users &&
    new HtpasswdUsers(
      { users: () => users.current(), groups: async () => (await groups?.current()) ?? noGroups },
      now,
    )
  return { htpasswd, key, externalJwt }
}

/**
 * Like Promise.all, but reports the first failure only once every load has
 * settled: a signing key still being written must not outlive a failed start
 * (the storage directory may be removed right after, as tests do).
 */
async function allSettledOrFirstError<T extends readonly unknown[]>(
  loads: readonly [...{ [K in keyof T]: Promise<T[K]> }],
): Promise<T> {
  const results = await Promise.allSettled(loads as readonly Promise<unknown>[])
  for (const result of results) if (result.status === 'rejected') throw result.reason
  return results.map((result) => (result as PromiseFulfilledResult<unknown>).value) as unknown as T
}
