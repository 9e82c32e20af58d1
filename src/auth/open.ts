/**
 * Builds access control from the config, once at start: the policy (always:
 * proxy rules hold without auth), and with `auth` the htpasswd users and
 * groups (re-read on change), the signing key and the registry tokens.
 * A file that cannot be used fails the start with a message naming its key.
 */
import type { Config } from '../config/schema.ts'
import { Authenticator } from './authenticator.ts'
import { HtpasswdUsers, parseGroups, parseHtpasswd } from './htpasswd.ts'
import { AccessPolicy } from './policy.ts'
import { RegistryTokens } from './registry-token.ts'
import { loadSigningKey } from './signing-key.ts'
import { WatchedFile } from './watched-file.ts'

interface Warner {
  warn(obj: object, msg: string): void
  info(obj: object, msg: string): void
}

export interface ClientAuth {
  readonly policy: AccessPolicy
  readonly authenticator: Authenticator | undefined
  readonly tokens: RegistryTokens | undefined
}

export async function openClientAuth(
  config: Config,
  logger: Warner,
  now: () => number,
): Promise<ClientAuth> {
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
  if (!auth) return { policy, authenticator: undefined, tokens: undefined }
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
  const [users, groups, key] = await Promise.all([
    watch(auth.htpasswd, 'auth.htpasswd', parseHtpasswd),
    watch(auth.groups, 'auth.groups', parseGroups),
    loadSigningKey(auth.signingKey, config.storage.path),
  ])
  const noGroups = new Map<string, string[]>()
  const htpasswd =
    users &&
    new HtpasswdUsers(
      { users: () => users.current(), groups: async () => (await groups?.current()) ?? noGroups },
      now,
    )
  const tokens = new RegistryTokens(key, auth.tokenTTL, now)
  return { policy, authenticator: new Authenticator(htpasswd, tokens, config.admin.token), tokens }
}
