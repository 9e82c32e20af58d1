/**
 * The process logger: pino, JSON lines on stdout. Secrets are removed twice: by
 * path (authorization headers, password/token fields) and by value (every
 * configured secret, wherever it appears in a line, e.g. inside an error message).
 * Upstream URLs are logged through `logUrl`/`logUrlPath`: origin and path only,
 * since queries carry signatures (presigned URLs) and userinfo carries passwords.
 */
import { createRequire } from 'node:module'
import { hostname } from 'node:os'
import { pino, type DestinationStream, type Logger, type LoggerOptions } from 'pino'

export type { Logger } from 'pino'

/** pino-pretty, loaded only for a terminal: a server logging JSON never holds its code. */
const loadPretty = () =>
  createRequire(import.meta.url)('pino-pretty') as typeof import('pino-pretty')

export interface LoggerSettings {
  readonly level: string
  /** Secret values to scrub from every line. */
  readonly secrets?: readonly string[]
  /** Where lines go; stdout by default. Tests pass a stream to read them back. */
  readonly destination?: DestinationStream
  /** Lines for a person (colour, one line per event) instead of JSON; only for stdout. */
  readonly pretty?: boolean
}

/** `log.format: auto` means pretty exactly when stdout is a terminal. */
export function prettyLogs(format: 'auto' | 'json' | 'pretty', stdoutIsTty: boolean): boolean {
  return format === 'pretty' || (format === 'auto' && stdoutIsTty)
}

const REDACTED = '[Redacted]'

/** Field paths never logged with their values. */
export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers["proxy-authorization"]',
  'req.headers.cookie',
  'res.headers["set-cookie"]',
  'headers.authorization',
  '*.password',
  '*.token',
  '*.accessToken',
  'password',
  'token',
]

/** Creates the root logger. */
export function createLogger(settings: LoggerSettings): Logger {
  const options: LoggerOptions = {
    level: settings.level,
    base: { node: hostname() },
    redact: { paths: REDACT_PATHS, censor: REDACTED },
    timestamp: pino.stdTimeFunctions.isoTime,
    hooks: { streamWrite: secretScrubber(settings.secrets ?? []) },
  }
  if (settings.destination) return pino(options, settings.destination)
  // Synchronous, in this thread: the secret scrubber above has run on the JSON line first.
  if (settings.pretty)
    return pino(
      options,
      loadPretty()({ sync: true, translateTime: 'SYS:standard', ignore: 'pid,hostname' }),
    )
  return pino(options)
}

/**
 * Replaces each secret with a marker: raw, JSON-escaped (as it appears in a
 * JSON line) and percent-encoded (as it appears inside a logged URL).
 */
function secretScrubber(secrets: readonly string[]): (line: string) => string {
  // Very short values would scrub ordinary words; config requires non-empty secrets,
  // and a 1-3 character password is not worth mangling every log line for.
  const needles = [
    ...new Set(
      secrets
        .filter((s) => s.length >= 4)
        .flatMap((s) => [s, JSON.stringify(s).slice(1, -1), encodeURIComponent(s)]),
    ),
  ]
  if (needles.length === 0) return (line) => line
  return (line) => {
    let out = line
    for (const needle of needles) if (out.includes(needle)) out = out.replaceAll(needle, REDACTED)
    return out
  }
}

/** A URL as a log line may show it: origin and path, never userinfo, query or fragment. */
export function logUrl(url: string, base?: string): string {
  let parsed: URL
  try {
    parsed = new URL(url, base)
  } catch {
    return '[invalid URL]'
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') return `[${parsed.protocol} URL]`
  return `${parsed.origin}${parsed.pathname}`
}

/** A path with its query and fragment cut off (`v2/x/blobs/y?sig=...` -> `v2/x/blobs/y`). */
export function logUrlPath(path: string): string {
  const end = path.search(/[?#]/)
  return end === -1 ? path : path.slice(0, end)
}
