#!/usr/bin/env -S node --max-semi-space-size=16
/**
 * The `pullthrough` command: finds the command, parses its options, runs it.
 * The shebang caps V8's young generation at 16 MB per semi-space, Node 20's
 * default: Node 24 grows it to 128 MB in all, which alone put the server past
 * 200 MB of RSS (`npm start` and the image pass the same flag).
 * Exit codes: 0 success, 1 runtime failure, 2 bad usage or invalid
 * configuration (one line on stderr saying why).
 */
import { createRequire } from 'node:module'
import { parseArgs } from 'node:util'
import { exportSpec, importSpec } from './cli/bundle-specs.ts'
import { CLIENT_COMMANDS } from './cli/client-commands.ts'
import {
  argsOptions,
  commandHelp,
  EXIT_FAILURE,
  EXIT_OK,
  EXIT_USAGE,
  GLOBAL_OPTIONS,
  overview,
  parseCommand,
  UsageError,
  type CommandSpec,
  type OptionSpec,
} from './cli/command.ts'
import { serveSpec } from './cli/serve-command.ts'

const FOOTER = 'Documentation: README.md, config.example.yaml and docs/.\n'

function version(): string {
  // dist/cli.js and src/cli.ts both sit one level below package.json.
  const pkg = createRequire(import.meta.url)('../package.json') as { version: string }
  return pkg.version
}

const COMMANDS: readonly CommandSpec[] = [
  serveSpec(version()),
  ...CLIENT_COMMANDS,
  exportSpec,
  importSpec,
]

/** `pullthrough` with no command: only the global options. */
const TOP: CommandSpec = {
  name: 'pullthrough',
  summary: '',
  description: '',
  options: {},
  examples: [],
  run: () => Promise.resolve(EXIT_USAGE),
}

/** Set once `serve` runs: its stop ends the process. */
let serving = false

/** The command's name and the arguments around it; options may come before it. */
function splitCommand(argv: readonly string[]): { name?: string; rest: string[] } {
  const every: Record<string, OptionSpec> = { ...GLOBAL_OPTIONS }
  for (const command of COMMANDS) Object.assign(every, command.options)
  const options = argsOptions(every)
  const { tokens } = parseArgs({
    args: [...argv],
    options,
    allowPositionals: true,
    strict: false,
    tokens: true,
  })
  const first = tokens.find((token) => token.kind === 'positional')
  if (first === undefined) return { rest: [...argv] }
  return { name: first.value, rest: argv.filter((_, i) => i !== first.index) }
}

async function main(argv: readonly string[]): Promise<number> {
  const { name, rest } = splitCommand(argv)
  if (name === 'help') {
    const [topic, extra] = rest
    if (extra !== undefined) throw new UsageError(`unexpected argument "${extra}"`)
    const command = COMMANDS.find((c) => c.name === topic)
    if (topic !== undefined && command === undefined)
      throw new UsageError(`unknown command "${topic}" (commands: ${names()})`)
    process.stdout.write(command ? commandHelp(command) : overview(COMMANDS, FOOTER))
    return EXIT_OK
  }
  const command = COMMANDS.find((c) => c.name === name)
  if (name !== undefined && command === undefined)
    throw new UsageError(`unknown command "${name}" (commands: ${names()}; see pullthrough --help)`)
  if (command === undefined) {
    const { values } = parseCommand(TOP, rest, COMMANDS)
    if (values.help === true) process.stdout.write(overview(COMMANDS, FOOTER))
    else if (values.version === true) process.stdout.write(`${version()}\n`)
    else throw new UsageError(`missing command (commands: ${names()}; see pullthrough --help)`)
    return EXIT_OK
  }
  const input = parseCommand(command, rest, COMMANDS)
  if (input.values.help === true) {
    process.stdout.write(commandHelp(command))
    return EXIT_OK
  }
  if (input.values.version === true) {
    process.stdout.write(`${version()}\n`)
    return EXIT_OK
  }
  serving = command.name === 'serve'
  return command.run(input)
}

function names(): string {
  return COMMANDS.map((c) => c.name).join(', ')
}

main(process.argv.slice(2)).then(
  (code) => {
    // After a server stop, exit even if a library left a timer behind: the bound on
    // shutdown is a promise to the operator (and to Kubernetes' grace period).
    if (serving) process.exit(code)
    process.exitCode = code
  },
  (error: unknown) => {
    if (error instanceof UsageError) {
      process.stderr.write(`pullthrough: ${error.message}\n`)
      process.exitCode = EXIT_USAGE
      return
    }
    process.stderr.write(`pullthrough: unexpected error: ${String(error)}\n`)
    process.exitCode = EXIT_FAILURE
  },
)
