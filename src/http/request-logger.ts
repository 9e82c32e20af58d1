/**
 * Fastify's per-request logger (`request.log`, with the request id bound),
 * made when the request first writes a line at an enabled level. Fastify
 * makes one for every request; a pino child serializes its bindings and
 * applies the redaction paths when made, which was 2-3% of a warm page GET's
 * CPU (bench/RESULTS.md, 2026-12-05), for a logger most requests never write
 * to at the default level (the request line is logged through it, so at
 * `info` every request still makes it, once).
 */
import type { FastifyBaseLogger } from 'fastify'
import type { Bindings, ChildLoggerOptions, LevelWithSilentOrString, LogFn } from 'pino'

type Level = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace'

class RequestLogger implements FastifyBaseLogger {
  #made: FastifyBaseLogger | undefined

  constructor(
    private readonly parent: LevelAware,
    private readonly bindings: Bindings,
    private readonly options: ChildLoggerOptions,
  ) {}

  get level(): LevelWithSilentOrString {
    return this.#made?.level ?? this.options.level ?? this.parent.level
  }

  set level(level: LevelWithSilentOrString) {
    this.#logger().level = level
  }

  // Methods, not arrow fields: a logger per request must not cost seven closures.
  fatal(...args: unknown[]): void {
    this.#write('fatal', args)
  }
  error(...args: unknown[]): void {
    this.#write('error', args)
  }
  warn(...args: unknown[]): void {
    this.#write('warn', args)
  }
  info(...args: unknown[]): void {
    this.#write('info', args)
  }
  debug(...args: unknown[]): void {
    this.#write('debug', args)
  }
  trace(...args: unknown[]): void {
    this.#write('trace', args)
  }
  silent(): void {}

  child(bindings: Bindings, options?: ChildLoggerOptions): FastifyBaseLogger {
    return this.#logger().child(bindings, options)
  }

  #write(level: Level, args: unknown[]): void {
    // A level set on the route (options.level) or later (the setter) is the made logger's.
    if (this.#made === undefined && this.options.level === undefined) {
      if (!this.parent.isLevelEnabled(level)) return
    }
    this.#logger()[level](...(args as Parameters<LogFn>))
  }

  #logger(): FastifyBaseLogger {
    this.#made ??= this.parent.child(this.bindings, this.options)
    return this.#made
  }
}

/** A logger that can say whether a level is written (pino's, which Fastify wraps in a child). */
interface LevelAware extends FastifyBaseLogger {
  isLevelEnabled(level: string): boolean
}

function levelAware(logger: FastifyBaseLogger): logger is LevelAware {
  return typeof (logger as Partial<LevelAware>).isLevelEnabled === 'function'
}

/**
 * Fastify's `childLoggerFactory`: a request logger made on its first line.
 * (Fastify's parent is its own child of the configured logger, not that
 * logger.) A parent that cannot say which levels it writes gets its child at
 * once, as Fastify's default does.
 */
export function requestLogger(
  parent: FastifyBaseLogger,
  bindings: Bindings,
  options: ChildLoggerOptions,
): FastifyBaseLogger {
  return levelAware(parent)
    ? new RequestLogger(parent, bindings, options)
    : parent.child(bindings, options)
}
