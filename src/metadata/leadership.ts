/**
 * One leader among the replicas for scheduled background work (sync lists,
 * scrub, retention gc): a lease `leader` with a short TTL, renewed by its
 * holder every HEARTBEAT_MS and tried by the others as often. A leader that
 * dies stops renewing; its lease lapses after TTL_MS and the next try of
 * another replica takes it: failure noticed within HEARTBEAT_MS of the lapse,
 * work taken over within TTL_MS + HEARTBEAT_MS of the death. A leader that
 * cannot renew (the store is down) stops calling itself leader before its
 * lease can lapse, so two replicas never both think they lead. Each job keeps
 * its own lease besides, which guards a run in progress.
 */
import type { MetadataStore } from './store.ts'

export const LEADER_LEASE = 'leader'
export const LEADER_TTL_MS = 10_000
export const LEADER_HEARTBEAT_MS = 2_000

interface Logger {
  info(obj: object, msg: string): void
  warn(obj: object, msg: string): void
}

export interface LeadershipOptions {
  readonly owner: string
  readonly logger: Logger
  /** A monotonic clock in ms (default performance.now): the lease runs in real time, whatever clock the app's jobs use. */
  readonly now?: () => number
  readonly ttlMs?: number
  readonly heartbeatMs?: number
  /** Called with the new state whenever this replica becomes or stops being leader. */
  readonly onChange?: (leader: boolean) => void
}

export class Leadership {
  #heldUntil = 0
  #leader = false
  #timer: NodeJS.Timeout | undefined
  #trying: Promise<void> | undefined
  readonly #now: () => number
  readonly #ttlMs: number
  readonly #heartbeatMs: number

  constructor(
    private readonly metadata: Pick<MetadataStore, 'acquireLease' | 'releaseLease'>,
    private readonly options: LeadershipOptions,
  ) {
    this.#now = options.now ?? (() => performance.now())
    this.#ttlMs = options.ttlMs ?? LEADER_TTL_MS
    this.#heartbeatMs = options.heartbeatMs ?? LEADER_HEARTBEAT_MS
  }

  /** Whether this replica leads now: it holds the lease with a heartbeat to spare. */
  isLeader(): boolean {
    const leader = this.#leader && this.#now() < this.#heldUntil - this.#heartbeatMs
    if (this.#leader && !leader) this.#set(false)
    return leader
  }

  /** Tries at once (resolving after that first try), then every heartbeat. */
  async start(): Promise<void> {
    if (this.#timer) return
    this.#timer = setInterval(() => void this.tick(), this.#heartbeatMs)
    this.#timer.unref()
    await this.tick()
  }

  /** One try to take or renew the lease (what the timer runs). */
  async tick(): Promise<void> {
    this.#trying ??= this.#try().finally(() => {
      this.#trying = undefined
    })
    await this.#trying
  }

  /** Stops trying and hands the lease over at once (a clean shutdown). */
  async stop(): Promise<void> {
    clearInterval(this.#timer)
    this.#timer = undefined
    await this.#trying
    if (!this.#leader) return
    this.#set(false)
    await this.metadata.releaseLease(LEADER_LEASE, this.options.owner).catch(() => undefined)
  }

  async #try(): Promise<void> {
    const asked = this.#now()
    try {
      const held = await this.metadata.acquireLease(LEADER_LEASE, this.options.owner, {
        ttlMs: this.#ttlMs,
      })
      if (held) {
        // Counted from before the call: the lease may have started while it was on the way.
        this.#heldUntil = asked + this.#ttlMs
        if (!this.#leader) this.#set(true)
      } else if (this.#leader) this.#set(false)
    } catch (error) {
      // Not renewed: isLeader() turns false before the lease can lapse.
      this.options.logger.warn(
        { reason: (error as Error).message },
        'cannot renew the leader lease; the metadata store does not answer',
      )
    }
  }

  #set(leader: boolean): void {
    this.#leader = leader
    this.options.logger.info(
      { owner: this.options.owner },
      leader
        ? 'this replica now leads scheduled work'
        : 'this replica no longer leads scheduled work',
    )
    this.options.onChange?.(leader)
  }
}
