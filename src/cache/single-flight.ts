/**
 * Concurrent callers with the same key share one run of the work: the second
 * caller for a tag that is being fetched waits for that fetch instead of
 * asking the upstream again.
 */
export class SingleFlight<T> {
  readonly #running = new Map<string, Promise<T>>()

  run(key: string, work: () => Promise<T>): Promise<T> {
    const running = this.#running.get(key)
    if (running) return running
    const started = work().finally(() => this.#running.delete(key))
    this.#running.set(key, started)
    return started
  }
}
