/**
 * Base of every typed error in pullthrough. Each layer's errors.ts extends it with
 * a stable `code` (PT_*), the fields that explain the failure, and `cause`.
 * The HTTP layer maps codes to responses in one place; messages must never carry
 * secrets or absolute filesystem paths, since some reach clients.
 */
export abstract class PullthroughError extends Error {
  abstract readonly code: string

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = new.target.name
  }
}
