/**
 * What a `pullthrough` command is: its options, its help (with examples) and
 * what it runs. Each command parses only its own options, so an option given
 * to the wrong command is a usage error that names the right one.
 */
import { parseArgs } from 'node:util'

export const EXIT_OK = 0
export const EXIT_FAILURE = 1
export const EXIT_USAGE = 2

export interface OptionSpec {
  readonly type: 'string' | 'boolean'
  readonly short?: string
  /** May be given more than once (values collected in order). */
  readonly multiple?: boolean
  /** How the value is shown in help: `--rate RATE`. */
  readonly value?: string
  readonly help: string
}

export type OptionValues = Readonly<
  Record<string, string | boolean | (string | boolean)[] | undefined>
>

export interface CommandInput {
  readonly values: OptionValues
  /** Positional arguments after the command's name. */
  readonly args: readonly string[]
}

export interface CommandSpec {
  readonly name: string
  /** Positional arguments as shown in help, like `[LIST...]`; none when absent. */
  readonly args?: string
  /** One line for the command list. */
  readonly summary: string
  /** What the command does, for its own help. */
  readonly description: string
  readonly options: Readonly<Record<string, OptionSpec>>
  readonly examples: readonly string[]
  run(input: CommandInput): Promise<number>
}

/** Options every command takes. */
export const GLOBAL_OPTIONS: Readonly<Record<string, OptionSpec>> = {
  config: {
    type: 'string',
    short: 'c',
    value: 'FILE',
    help: 'Config file (default: $PULLTHROUGH_CONFIG, else ./config.yaml if present, else built-in defaults)',
  },
  help: { type: 'boolean', short: 'h', help: 'Show this help' },
  version: { type: 'boolean', short: 'v', help: 'Show the version' },
}

/** Bad command-line input: printed as one line, exit 2. */
export class UsageError extends Error {}

/** Parses `argv` (after the command's name) against `command`'s options and the global ones. */
export function parseCommand(
  command: CommandSpec,
  argv: readonly string[],
  all: readonly CommandSpec[],
): CommandInput {
  const options = { ...GLOBAL_OPTIONS, ...command.options }
  try {
    const { values, positionals } = parseArgs({
      args: [...argv],
      allowPositionals: true,
      strict: true,
      options: argsOptions(options),
    })
    return { values, args: positionals }
  } catch (error) {
    throw new UsageError(misplacedOption(error, command, all) ?? (error as Error).message)
  }
}

/** The options as `parseArgs` takes them (it refuses keys set to undefined). */
export function argsOptions(options: Readonly<Record<string, OptionSpec>>) {
  return Object.fromEntries(
    Object.entries(options).map(([name, o]) => [
      name,
      {
        type: o.type,
        ...(o.short === undefined ? {} : { short: o.short }),
        ...(o.multiple === undefined ? {} : { multiple: o.multiple }),
      },
    ]),
  )
}

/** "--rate is an option of verify" when the unknown option belongs to other commands. */
function misplacedOption(
  error: unknown,
  command: CommandSpec,
  all: readonly CommandSpec[],
): string | undefined {
  const name = /Unknown option '--([\w-]+)'/.exec((error as Error).message)?.[1]
  if (name === undefined) return undefined
  const owners = all.filter((c) => c !== command && name in c.options).map((c) => c.name)
  if (owners.length === 0) return `${command.name} has no option --${name}`
  return `--${name} is an option of ${owners.join(', ')}, not of ${command.name}`
}

/** The help of one command: usage line, description, options, examples. */
export function commandHelp(command: CommandSpec): string {
  const args = command.args ? ` ${command.args}` : ''
  return [
    `Usage: pullthrough ${command.name} [options]${args}`,
    '',
    wrap(command.description, 78),
    '',
    'Options:',
    ...optionLines({ ...command.options, ...GLOBAL_OPTIONS }),
    '',
    command.examples.length === 1 ? 'Example:' : 'Examples:',
    ...command.examples.map((e) => `  ${e}`),
    '',
  ].join('\n')
}

/** The help of `pullthrough` itself: the commands and where to read more. */
export function overview(commands: readonly CommandSpec[], footer: string): string {
  const width = Math.max(...commands.map((c) => c.name.length + (c.args?.length ?? 0) + 1))
  return [
    'Usage: pullthrough <command> [options]',
    '',
    'A pull-through cache for container images (Docker Registry v2 / OCI) and',
    'Python packages (PyPI simple API).',
    '',
    'Commands:',
    ...commands.map((c) => {
      const left = `${c.name}${c.args ? ` ${c.args}` : ''}`.padEnd(width)
      return `  ${left}  ${c.summary}`
    }),
    '',
    'Options:',
    ...optionLines(GLOBAL_OPTIONS),
    '',
    'Every command but serve asks a running server, through its API (--url, --token).',
    "Run 'pullthrough <command> --help' (or 'pullthrough help <command>') for a",
    "command's options and examples.",
    '',
    footer,
  ].join('\n')
}

function optionLines(options: Readonly<Record<string, OptionSpec>>): string[] {
  const label = (name: string, o: OptionSpec) =>
    `${o.short ? `-${o.short}, ` : '    '}--${name}${o.value ? ` ${o.value}` : ''}`
  const entries = Object.entries(options)
  const width = Math.max(...entries.map(([name, o]) => label(name, o).length))
  return entries.flatMap(([name, o]) => {
    const [first = '', ...rest] = wrap(o.help, 76 - width).split('\n')
    return [
      `  ${label(name, o).padEnd(width)}  ${first}`,
      ...rest.map((line) => `  ${' '.repeat(width)}  ${line}`),
    ]
  })
}

/** Wraps prose at `width` columns, keeping blank-line paragraphs. */
function wrap(text: string, width: number): string {
  return text
    .split('\n\n')
    .map((paragraph) => {
      const lines: string[] = []
      let line = ''
      for (const word of paragraph.split(/\s+/).filter(Boolean)) {
        if (line !== '' && line.length + 1 + word.length > width) {
          lines.push(line)
          line = word
        } else line = line === '' ? word : `${line} ${word}`
      }
      lines.push(line)
      return lines.join('\n')
    })
    .join('\n\n')
}
