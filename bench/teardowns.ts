/**
 * The test helpers (registry, skopeo, temp dirs) take a tap `Test` only to call
 * `t.teardown(fn)`. Outside tap this stands in for it: it collects the
 * callbacks and runs them, last registered first, when the benchmark ends.
 */
import type { Test } from 'tap'

type Teardown = () => unknown

export class Teardowns {
  readonly #callbacks: Teardown[] = []

  teardown(fn: Teardown): void {
    this.#callbacks.push(fn)
  }

  /** This object typed as the `Test` the helpers ask for; they call nothing but `teardown`. */
  asTest(): Test {
    return this as unknown as Test
  }

  /** Runs every callback once, newest first; a failing one does not stop the rest. */
  async run(): Promise<unknown[]> {
    const errors: unknown[] = []
    for (let fn = this.#callbacks.pop(); fn; fn = this.#callbacks.pop()) {
      try {
        await fn()
      } catch (error) {
        errors.push(error)
      }
    }
    return errors
  }
}
