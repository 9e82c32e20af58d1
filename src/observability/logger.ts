/**
 * The process logger: pino, JSON lines on stdout. Secrets are removed twice: by
 * path (authorization headers, password/token fields) and by value (every
 * configured secret, wherever it appears in a line, e.g. inside an error message).
 */
import { hostname } from 'node:os'
import { pino, type DestinationStream, type Logger, type LoggerOptions } from 'pino'

export type { Logger } from 'pino'

export interface LoggerSettings {
  readonly level: string
  /** Secret values to scrub from every line. */
  readonly secrets?: readonly string[]
  /** Where lines go; stdout by default. Tests pass a stream to read them back. */
  readonly destination?: DestinationStream
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
  return settings.destination ? pino(options, settings.destination) : pino(options)
}

/** Replaces each secret (raw and JSON-escaped, as it would appear in a JSON line) with a marker. */
function secretScrubber(secrets: readonly string[]): (line: string) => string {
  // Very short values would scrub ordinary words; config requires non-empty secrets,
  // and a 1-3 character password is not worth mangling every log line for.
  const needles = [
    ...new Set(
      secrets.filter((s) => s.length >= 4).flatMap((s) => [s, JSON.stringify(s).slice(1, -1)]),
    ),
  ]
  if (needles.length === 0) return (line) => line
  return (line) => {
    let out = line
    for (const needle of needles) if (out.includes(needle)) out = out.replaceAll(needle, REDACTED)
    return out
  }
}
