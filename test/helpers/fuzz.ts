/**
 * What the property-based tests share: inputs of every kind (printable, full
 * unicode, and header-ish pieces glued together), a bound on time per input,
 * and "no error but the parser's own typed one".
 */
import fc from 'fast-check'

/** Per input, on a loaded CI machine: catastrophic backtracking takes seconds, not this. */
export const MAX_MS_PER_INPUT = 250
export const RUNS = { numRuns: 500 }

/** Strings of every kind: printable, full unicode, and header-ish pieces glued together. */
export const text = fc.oneof(
  fc.string({ maxLength: 300 }),
  fc.string({ unit: 'binary', maxLength: 300 }),
  fc
    .array(
      fc.constantFrom(
        'Bearer ',
        'Basic ',
        'realm=',
        '"',
        '\\',
        ',',
        ';',
        '=',
        ' ',
        'q=0.',
        '1',
        '*/*',
        'application/',
        'bytes=',
        '-',
        '/',
        '..',
        'sha256:',
        'a',
        '%2F',
        '\u0000',
        '<a href="',
        '#sha256=',
        '">',
        '</a>',
        '{"files":[',
        '}',
      ),
      { maxLength: 60 },
    )
    .map((parts) => parts.join('')),
)

export function timed<T>(work: () => T): T {
  const started = performance.now()
  const result = work()
  const ms = performance.now() - started
  if (ms > MAX_MS_PER_INPUT) throw new Error(`took ${ms.toFixed(0)} ms`)
  return result
}

/** Runs `work`; an error must be one of `allowed`. */
export function only<T>(
  work: () => T,
  ...allowed: (abstract new (...args: never[]) => Error)[]
): T | undefined {
  try {
    return timed(work)
  } catch (error) {
    if (allowed.some((type) => error instanceof type)) return undefined
    throw error
  }
}
