/**
 * The most recent pull events of this replica, in a fixed-size ring: what
 * `/-/api/v1/events` shows. Pushing stores the event object as it is (no copy:
 * it runs on every warm tag-manifest GET); the oldest is overwritten.
 */
import { hostname } from 'node:os'
import type { CacheResult, PullEventFields } from './pull-event.ts'

/** Pull events kept per replica. */
export const EVENT_RING_SIZE = 1000

export interface EventFilter {
  readonly protocol?: PullEventFields['protocol'] | undefined
  /** Repository or project, exactly. */
  readonly subject?: string | undefined
  readonly cache?: CacheResult | undefined
  readonly limit: number
}

/** A pull event as the API shows it. */
export interface RecentEvent extends PullEventFields {
  /** When the response ended (ms since the epoch). */
  readonly time: number
  /** The replica that served it. */
  readonly node: string
}

export class EventRing {
  readonly #events: (PullEventFields | undefined)[]
  readonly #times: number[]
  #next = 0
  readonly #node = hostname()

  constructor(
    private readonly size: number = EVENT_RING_SIZE,
    private readonly now: () => number = Date.now,
  ) {
    this.#events = new Array<PullEventFields | undefined>(size)
    this.#times = new Array<number>(size).fill(0)
  }

  push(event: PullEventFields): void {
    this.#events[this.#next] = event
    this.#times[this.#next] = this.now()
    this.#next = (this.#next + 1) % this.size
  }

  /** Newest first, at most `filter.limit`. */
  recent(filter: EventFilter): RecentEvent[] {
    const out: RecentEvent[] = []
    for (let i = 1; i <= this.size && out.length < filter.limit; i++) {
      const at = (this.#next - i + this.size) % this.size
      const event = this.#events[at]
      if (!event) break
      if (filter.protocol !== undefined && event.protocol !== filter.protocol) continue
      if (filter.subject !== undefined && event.subject !== filter.subject) continue
      if (filter.cache !== undefined && event.cache !== filter.cache) continue
      out.push({
        ...event,
        durationMs: Math.round(event.durationMs),
        time: this.#times[at] ?? 0,
        node: this.#node,
      })
    }
    return out
  }
}
