/**
 * Per-mirror circuit breaker. After `failures` consecutive failures the mirror
 * is skipped for `cooldownMs`; then exactly one probe request is let through, and
 * its outcome closes the circuit again or re-opens it for another cooldown.
 */

export type BreakerState = 'closed' | 'open' | 'half-open'

export interface BreakerOptions {
  readonly failures: number
  readonly cooldownMs: number
  readonly now: () => number
  /** Called on every transition into or out of 'open' (for the circuit gauge and a log line). */
  readonly onChange?: (state: BreakerState) => void
}

export class CircuitBreaker {
  #consecutiveFailures = 0
  #openedAt = 0
  #state: BreakerState = 'closed'
  #probeInFlight = false

  constructor(private readonly options: BreakerOptions) {}

  get state(): BreakerState {
    return this.#state
  }

  /** Milliseconds until a probe may be sent (0 when requests may go now). */
  retryInMs(): number {
    if (this.#state !== 'open') return 0
    return Math.max(0, this.#openedAt + this.options.cooldownMs - this.options.now())
  }

  /**
   * Whether a request may be sent now. In half-open state only the first caller
   * gets true (it is the probe); call onSuccess/onFailure with its outcome.
   */
  tryAcquire(): boolean {
    if (this.#state === 'closed') return true
    if (this.#state === 'open') {
      if (this.retryInMs() > 0) return false
      this.#transition('half-open')
    }
    if (this.#probeInFlight) return false
    this.#probeInFlight = true
    return true
  }

  /** True when tryAcquire would let a request through, without taking the probe slot. */
  isAvailable(): boolean {
    if (this.#state === 'closed') return true
    if (this.#state === 'open') return this.retryInMs() === 0
    return !this.#probeInFlight
  }

  onSuccess(): void {
    this.#consecutiveFailures = 0
    this.#probeInFlight = false
    if (this.#state !== 'closed') this.#transition('closed')
  }

  onFailure(): void {
    this.#consecutiveFailures++
    const wasProbe = this.#probeInFlight
    this.#probeInFlight = false
    if (
      wasProbe ||
      this.#state === 'half-open' ||
      this.#consecutiveFailures >= this.options.failures
    ) {
      this.#openedAt = this.options.now()
      if (this.#state !== 'open') this.#transition('open')
    }
  }

  /** Gives back a probe slot whose request ended with neither success nor failure (e.g. cancelled). */
  release(): void {
    this.#probeInFlight = false
  }

  #transition(state: BreakerState): void {
    this.#state = state
    this.options.onChange?.(state)
  }
}
