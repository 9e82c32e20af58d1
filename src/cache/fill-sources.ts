/**
 * The places one fill may take bytes from, in the order to ask them. First the
 * source the client's request named; then, once that one fails or breaks, the
 * alternatives it offers (for a Python file: the same filename and sha256 that
 * the index's other upstreams list), loaded once and only when needed. A
 * source whose transfer broke goes to the back, so a mirror that keeps cutting
 * cannot hold a fill while another has the same bytes.
 */
import type { Logger } from '../observability/logger.ts'
import type { Mirror } from '../upstream/mirror.ts'
import type { UpstreamSource } from '../upstream/source.ts'

export interface FillSource extends UpstreamSource {
  /**
   * Other sources of the very same bytes, asked for only when this one cannot
   * give them (before the first byte or mid-way). Docker sources have none: the
   * pool's mirrors are the other copies.
   */
  readonly alternatives?: () => Promise<readonly FillSource[]>
}

export class FillSources {
  readonly #order: FillSource[]
  #load: (() => Promise<readonly FillSource[]>) | undefined

  constructor(
    primary: FillSource,
    private readonly logger: Logger,
  ) {
    this.#order = [primary]
    this.#load = primary.alternatives
  }

  /** The known sources, best first. */
  get list(): readonly FillSource[] {
    return this.#order
  }

  /** True while alternatives may still be loaded. */
  get canExpand(): boolean {
    return this.#load !== undefined
  }

  /** How many mirrors the known sources have together. */
  get mirrorCount(): number {
    return this.#order.reduce((sum, source) => sum + source.pool.mirrors.length, 0)
  }

  /** True when every mirror of `source` is in `excluded`. */
  static exhausted(source: FillSource, excluded: ReadonlySet<Mirror>): boolean {
    return source.pool.mirrors.every((m) => excluded.has(m))
  }

  /** Loads the alternatives (once); true when that added a source. */
  async expand(): Promise<boolean> {
    const load = this.#load
    if (!load) return false
    this.#load = undefined
    let found: readonly FillSource[]
    try {
      found = await load()
    } catch (error) {
      this.logger.warn({ err: error }, 'could not look up other sources of the content')
      return false
    }
    const known = (s: FillSource) => this.#order.some((o) => o.pool === s.pool && o.path === s.path)
    const added = found.filter((s) => !known(s))
    this.#order.push(...added)
    return added.length > 0
  }

  /** A source whose transfer broke goes to the back of the line. */
  demote(source: FillSource): void {
    const at = this.#order.indexOf(source)
    if (at < 0 || this.#order.length < 2) return
    this.#order.splice(at, 1)
    this.#order.push(source)
  }
}
