/**
 * `pullthrough token create|list|revoke`: API tokens of a running server
 * (auth on). `create` prints the secret once, with how to use it.
 */
import { deleteJson, getJson, sendJson } from './api-client.ts'
import type { ClientOptions } from './commands.ts'
import { table } from './tables.ts'

/** A token as the API shows it. */
export interface TokenView {
  readonly id: string
  readonly user: string
  readonly groups: readonly string[]
  readonly description: string
  readonly createdAt: string
  readonly expiresAt: string | null
}

export interface CreateTokenOptions extends ClientOptions {
  readonly user: string
  readonly groups: readonly string[]
  readonly description: string | undefined
  readonly expiresIn: string | undefined
}

export async function createTokenCommand(options: CreateTokenOptions): Promise<void> {
  const made = (await sendJson(options.url, 'tokens', options.token, {
    user: options.user,
    groups: options.groups,
    ...(options.description === undefined ? {} : { description: options.description }),
    ...(options.expiresIn === undefined ? {} : { expiresIn: options.expiresIn }),
  })) as TokenView & { token: string }
  if (options.json) {
    options.write(`${JSON.stringify(made, null, 2)}\n`)
    return
  }
  options.write(
    `${made.token}\n\nToken ${made.id} signs in as ${made.user}${made.groups.length > 0 ? ` (groups ${made.groups.join(', ')})` : ''}, ${made.expiresAt === null ? 'until revoked' : `until ${made.expiresAt}`}.\nIt is shown only now. Use it as a password (docker login -u ${made.user}, pip index URL https://${made.user}:TOKEN@host/simple/) or as a Bearer token.\n`,
  )
}

export async function listTokensCommand(options: ClientOptions): Promise<TokenView[]> {
  const { items } = (await getJson(options.url, 'tokens', options.token)) as {
    items: TokenView[]
  }
  if (options.json) options.write(`${JSON.stringify({ items }, null, 2)}\n`)
  else if (items.length === 0) options.write('No API tokens.\n')
  else
    options.write(
      table(
        ['id', 'user', 'groups', 'created', 'expires', 'description'],
        items.map((t) => [
          t.id,
          t.user,
          t.groups.join(','),
          t.createdAt.slice(0, 10),
          t.expiresAt?.slice(0, 10) ?? 'never',
          t.description,
        ]),
        [],
      ),
    )
  return items
}

export async function revokeTokenCommand(options: ClientOptions & { id: string }): Promise<void> {
  await deleteJson(options.url, `tokens/${encodeURIComponent(options.id)}`, options.token)
  if (options.json) options.write(`${JSON.stringify({ revoked: options.id })}\n`)
  else
    options.write(
      `Token ${options.id} revoked: it stops working within 5 seconds on every replica.\n`,
    )
}
