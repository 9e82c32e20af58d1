/** Runs `wrk --latency` against one URL and reads its summary: requests/s and latency percentiles. */
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'

/** Time wrk may take beyond its own --duration (start-up, connection close, report). */
const WRK_GRACE_MS = 30_000
/** wrk's per-request timeout: a response slower than this counts as a timeout error. */
const WRK_REQUEST_TIMEOUT_S = 5

export interface WrkOptions {
  readonly url: string
  readonly threads: number
  readonly connections: number
  readonly durationS: number
  readonly headers?: Readonly<Record<string, string>>
  /** Run wrk on these CPUs only (`taskset -c`), away from the server under test. */
  readonly cpus?: string
}

export interface WrkResult {
  readonly requests: number
  readonly requestsPerSec: number
  readonly p50Ms: number
  readonly p99Ms: number
  /** Responses with a status outside 2xx/3xx. */
  readonly non2xx: number
  /** Connect, read, write and timeout errors together. */
  readonly socketErrors: number
}

const execFileAsync = promisify(execFile)

/** wrk's time units (src/units.c) in milliseconds. */
const TIME_UNITS_MS: Readonly<Record<string, number>> = {
  us: 0.001,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
}

export async function runWrk(options: WrkOptions): Promise<WrkResult> {
  const args = [
    '--latency',
    '-t',
    String(options.threads),
    '-c',
    String(options.connections),
    '-d',
    `${options.durationS}s`,
    '--timeout',
    `${WRK_REQUEST_TIMEOUT_S}s`,
  ]
  for (const [name, value] of Object.entries(options.headers ?? {}))
    args.push('-H', `${name}: ${value}`)
  args.push(options.url)
  const [command, commandArgs] =
    options.cpus === undefined ? ['wrk', args] : ['taskset', ['-c', options.cpus, 'wrk', ...args]]
  const { stdout } = await execFileAsync(command, commandArgs, {
    timeout: options.durationS * 1000 + WRK_GRACE_MS,
  })
  return parseWrk(stdout)
}

/** Reads the numbers out of wrk's text report. */
export function parseWrk(report: string): WrkResult {
  const number = (re: RegExp): number | undefined => {
    const match = re.exec(report)
    return match?.[1] === undefined ? undefined : Number(match[1])
  }
  const latency = (percentile: string): number => {
    const match = new RegExp(`^\\s*${percentile}%\\s+([\\d.]+)(us|ms|s|m|h)\\s*$`, 'm').exec(report)
    const unit = TIME_UNITS_MS[match?.[2] ?? '']
    if (match?.[1] === undefined || unit === undefined)
      throw new Error(`no ${percentile}% latency in the wrk report:\n${report}`)
    return Number(match[1]) * unit
  }
  const requests = number(/^\s*(\d+) requests in /m)
  const requestsPerSec = number(/^Requests\/sec:\s+([\d.]+)/m)
  if (requests === undefined || requestsPerSec === undefined)
    throw new Error(`unreadable wrk report:\n${report}`)
  const errors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(report)
  const socketErrors = errors ? errors.slice(1).reduce((sum, n) => sum + Number(n), 0) : 0
  return {
    requests,
    requestsPerSec,
    p50Ms: latency('50'),
    p99Ms: latency('99'),
    non2xx: number(/Non-2xx or 3xx responses: (\d+)/) ?? 0,
    socketErrors,
  }
}
