/**
 * The commands that ask a running server through its admin API: stats, ls,
 * verify, gc, sync and token. The server does the work; these show it.
 * Commands with progress bars load their code when they run: `serve`, in
 * the same binary, never holds it.
 */
import { loadConfig } from '../config/load.ts'
import { SYNC_LIST_NAME } from '../config/schema.ts'
import { ClientError, localUrl } from '../client/api-client.ts'
import { LS_SORTS, lsCommand, statsCommand, type ClientOptions } from '../client/commands.ts'
import { gcCommand } from '../client/gc-command.ts'
import {
  createTokenCommand,
  listTokensCommand,
  revokeTokenCommand,
} from '../client/token-command.ts'
import {
  EXIT_FAILURE,
  EXIT_OK,
  UsageError,
  type CommandInput,
  type CommandSpec,
  type OptionSpec,
  type OptionValues,
} from './command.ts'

/** Rows per protocol `ls` asks for at most (the API's page size). */
const MAX_LS_LIMIT = 500

/** Options of every command that talks to a server. */
export const SERVER_OPTIONS = {
  url: {
    type: 'string',
    value: 'URL',
    help: "The server (default: the config's server.host and server.port)",
  },
  token: {
    type: 'string',
    value: 'TOKEN',
    help: "Its admin.token (default: $PULLTHROUGH_ADMIN_TOKEN, else the config's)",
  },
} as const satisfies Record<string, OptionSpec>

const JSON_OPTION = {
  json: { type: 'boolean', help: "Print the API's JSON instead of a table" },
} as const satisfies Record<string, OptionSpec>

export function text(values: OptionValues, name: string): string | undefined {
  const value = values[name]
  return typeof value === 'string' ? value : undefined
}

/** Where the server is and its token: options first, then the environment, then the config. */
export async function serverOptions(values: OptionValues): Promise<ClientOptions> {
  let url = text(values, 'url')
  let token = text(values, 'token') ?? nonEmpty(process.env.PULLTHROUGH_ADMIN_TOKEN)
  if (url === undefined || token === undefined) {
    let config
    try {
      ;({ config } = await loadConfig({ file: text(values, 'config') }))
    } catch (error) {
      throw new UsageError(`invalid config: ${(error as Error).message}`)
    }
    url ??= localUrl(config)
    token ??= config.admin.token
  }
  return {
    url,
    token,
    json: values.json === true,
    write: (s: string) => process.stdout.write(s),
  }
}

/** Runs `work`; a refusal or an unreachable server is one line and exit 1. */
export async function asClient(work: () => Promise<number>): Promise<number> {
  try {
    return await work()
  } catch (error) {
    if (error instanceof ClientError) {
      process.stderr.write(`pullthrough: ${error.message}\n`)
      return EXIT_FAILURE
    }
    throw error
  }
}

function noArgs({ args }: CommandInput): void {
  if (args.length > 0) throw new UsageError(`unexpected argument "${args[0] ?? ''}"`)
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value
}

export const statsSpec: CommandSpec = {
  name: 'stats',
  summary: 'Pulls, hit ratio, bytes saved and disk use',
  description:
    'Shows what a running server served over the last hour, day and week: pulls by cache result, hit ratio, bytes served from the cache and fetched upstream, and its disk use against storage.maxSize. Needs admin.token when the server sets one.',
  options: { ...SERVER_OPTIONS, ...JSON_OPTION },
  examples: ['pullthrough stats', 'pullthrough stats --url http://cache.internal:5000 --json'],
  async run(input) {
    noArgs(input)
    const options = await serverOptions(input.values)
    return asClient(async () => {
      await statsCommand(options)
      return EXIT_OK
    })
  },
}

export const lsSpec: CommandSpec = {
  name: 'ls',
  args: '[docker|pypi]',
  summary: 'The repositories and projects it serves, most pulled first',
  description:
    'Lists the repositories (docker) and projects (pypi) a running server served in a time window, with pulls, hit ratio, bytes and distinct clients; both protocols when none is named.',
  options: {
    sort: { type: 'string', value: 'KEY', help: 'pulls, size or last (default pulls)' },
    window: { type: 'string', value: 'W', help: '1h, 24h, 7d, 30d or 90d (default 24h)' },
    limit: {
      type: 'string',
      value: 'N',
      help: `Rows per protocol, 1 to ${MAX_LS_LIMIT} (default 50)`,
    },
    ...SERVER_OPTIONS,
    ...JSON_OPTION,
  },
  examples: ['pullthrough ls docker --sort size --window 7d', 'pullthrough ls pypi --limit 10'],
  async run({ values, args }) {
    const [protocol, extra] = args
    if (extra !== undefined) throw new UsageError(`unexpected argument "${extra}"`)
    if (protocol !== undefined && protocol !== 'docker' && protocol !== 'pypi')
      throw new UsageError(`ls takes docker or pypi, not "${protocol}"`)
    const sort = text(values, 'sort') ?? 'pulls'
    if (!(sort in LS_SORTS)) throw new UsageError(`--sort takes pulls, size or last, not "${sort}"`)
    const limit = Number(text(values, 'limit') ?? 50)
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LS_LIMIT)
      throw new UsageError(`--limit takes a whole number from 1 to ${MAX_LS_LIMIT}`)
    const options = await serverOptions(values)
    return asClient(async () => {
      await lsCommand({
        ...options,
        protocol,
        sort: sort as keyof typeof LS_SORTS,
        window: text(values, 'window') ?? '24h',
        limit,
      })
      return EXIT_OK
    })
  },
}

export const verifySpec: CommandSpec = {
  name: 'verify',
  summary: 'Re-hash every stored blob now, quarantining mismatches',
  description:
    'Asks a running server to re-hash every stored blob at a bounded rate (the scheduled scrub, now) and follows it with a progress bar, then prints a summary. A blob that no longer matches its digest is quarantined and fetched again on its next pull; the command then exits 1. The run goes on if the command is interrupted. Needs admin.token.',
  options: {
    rate: {
      type: 'string',
      value: 'RATE',
      help: "Read at most this fast, like 100MB/s (default: the server's scrub.rate)",
    },
    ...SERVER_OPTIONS,
    ...JSON_OPTION,
  },
  examples: ['pullthrough verify', 'pullthrough verify --rate 200MB/s --json'],
  async run(input) {
    noArgs(input)
    const options = await serverOptions(input.values)
    return asClient(async () => {
      const { verifyCommand } = await import('../client/verify-command.ts')
      const run = await verifyCommand({
        ...options,
        rate: text(input.values, 'rate'),
        progress: process.stderr,
      })
      return run.corrupt > 0 || run.error !== null ? EXIT_FAILURE : EXIT_OK
    })
  },
}

export const gcSpec: CommandSpec = {
  name: 'gc',
  summary: 'Reconcile metadata with the disk and apply retention',
  description:
    'Asks a running server to drop records of blobs whose file is gone, record files no record names, sweep abandoned temporary files and apply the retention rules, then prints what it did. With --dry-run it reports what would change and changes nothing. Needs admin.token.',
  options: {
    'dry-run': { type: 'boolean', help: 'Report what would change, change nothing' },
    ...SERVER_OPTIONS,
    ...JSON_OPTION,
  },
  examples: ['pullthrough gc --dry-run', 'pullthrough gc --json'],
  async run(input) {
    noArgs(input)
    const options = await serverOptions(input.values)
    return asClient(async () => {
      await gcCommand({ ...options, dryRun: input.values['dry-run'] === true })
      return EXIT_OK
    })
  },
}

export const syncSpec: CommandSpec = {
  name: 'sync',
  args: '[LIST...]',
  summary: 'Run sync lists now (all when none is named)',
  description:
    'Asks a running server to run the named sync lists (config key sync; every list when none is named) now, and follows them with a progress bar per list, then a table of new, updated, unchanged and failed items and bytes fetched. Exits 1 when an item failed. The runs go on if the command is interrupted. Needs admin.token.',
  options: { ...SERVER_OPTIONS, ...JSON_OPTION },
  examples: ['pullthrough sync', 'pullthrough sync base python-wheels'],
  async run({ values, args }) {
    const bad = args.find((name) => !SYNC_LIST_NAME.test(name))
    if (bad !== undefined) throw new UsageError(`"${bad}" is not a sync list name`)
    const options = await serverOptions(values)
    return asClient(async () => {
      const { syncCommand } = await import('../client/sync-command.ts')
      const runs = await syncCommand({ ...options, lists: args, progress: process.stderr })
      return runs.some((r) => r.failed > 0 || r.error !== null) ? EXIT_FAILURE : EXIT_OK
    })
  },
}

const TOKEN_ACTIONS = ['create', 'list', 'revoke'] as const

export const tokenSpec: CommandSpec = {
  name: 'token',
  args: 'create|list|revoke [ID]',
  summary: 'API tokens clients sign in with (auth on)',
  description:
    "Manages the API tokens of a running server with auth configured. create makes one for --user (and --group, repeatable) and prints it once: clients use it as the password of their usual login (docker login, skopeo --creds, pip index URL or netrc) or as a Bearer token; the server keeps only its SHA-256. list shows them (never the secret); revoke ID ends one (within 5 seconds on every replica). Needs admin.token or an admin's credentials.",
  options: {
    user: { type: 'string', value: 'USER', help: 'create: the user the token signs in as' },
    group: {
      type: 'string',
      multiple: true,
      value: 'GROUP',
      help: 'create: a group of that user (repeat for more)',
    },
    description: { type: 'string', value: 'TEXT', help: 'create: what the token is for' },
    'expires-in': {
      type: 'string',
      value: 'DURATION',
      help: 'create: valid for this long, like 90d (default: until revoked)',
    },
    ...SERVER_OPTIONS,
    ...JSON_OPTION,
  },
  examples: [
    'pullthrough token create --user ci --group builders --description "GitLab runners" --expires-in 90d',
    'pullthrough token list',
    'pullthrough token revoke 3f2a9c1b7d4e',
  ],
  async run({ values, args }) {
    const [action, id, extra] = args
    if (!TOKEN_ACTIONS.includes(action as (typeof TOKEN_ACTIONS)[number]))
      throw new UsageError(
        `token takes ${TOKEN_ACTIONS.join(', ')}${action === undefined ? '' : `, not "${action}"`}`,
      )
    const createOnly = ['user', 'group', 'description', 'expires-in'].find(
      (name) => action !== 'create' && values[name] !== undefined,
    )
    if (createOnly !== undefined) throw new UsageError(`--${createOnly} goes with token create`)
    if (action === 'revoke' ? id === undefined || extra !== undefined : id !== undefined)
      throw new UsageError(
        action === 'revoke'
          ? 'token revoke takes one token id'
          : `unexpected argument "${id ?? ''}"`,
      )
    const user = text(values, 'user')
    if (action === 'create' && user === undefined) throw new UsageError('token create needs --user')
    const options = await serverOptions(values)
    return asClient(async () => {
      if (action === 'list') await listTokensCommand(options)
      else if (action === 'revoke') await revokeTokenCommand({ ...options, id: id ?? '' })
      else {
        const groups = values.group
        await createTokenCommand({
          ...options,
          user: user ?? '',
          groups: Array.isArray(groups)
            ? groups.filter((g): g is string => typeof g === 'string')
            : [],
          description: text(values, 'description'),
          expiresIn: text(values, 'expires-in'),
        })
      }
      return EXIT_OK
    })
  },
}

export const CLIENT_COMMANDS: readonly CommandSpec[] = [
  statsSpec,
  lsSpec,
  verifySpec,
  gcSpec,
  syncSpec,
  tokenSpec,
]
