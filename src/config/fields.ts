/**
 * Config fields shared by the schema files: durations parsed to milliseconds
 * and sizes to bytes, once, with the message a user sees for a bad value.
 */
import { z } from 'zod'
import { parseDuration, parseSize } from './units.ts'

/** Milliseconds, parsed from `30s`, `5m`, ... */
export type Millis = number

export function duration(fallback: string) {
  return z
    .union([z.string(), z.number()])
    .default(fallback)
    .transform((value, ctx): Millis => {
      const ms = parseDuration(value)
      if (ms === undefined) {
        ctx.issues.push({
          code: 'custom',
          input: value,
          message: 'must be a duration like 250ms, 30s, 5m or 1h',
        })
        return z.NEVER
      }
      return ms
    })
}

export function size(fallback: string) {
  return z
    .union([z.string(), z.number()])
    .default(fallback)
    .transform((value, ctx): number => {
      const bytes = parseSize(value)
      if (bytes === undefined) {
        ctx.issues.push({
          code: 'custom',
          input: value,
          message: 'must be a size like 512MiB or 50GiB',
        })
        return z.NEVER
      }
      return bytes
    })
}

/** The name of an environment variable that holds a secret (`tokenEnv`, `secretEnv`). */
export const envName = z
  .string()
  .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be an environment variable name')

/**
 * A secret given at most once: as itself, a file or an environment variable
 * (`keys`, in that order); with `required`, exactly once.
 */
export function oneSecretSource<K extends string>(
  keys: readonly [K, K, K],
  required: boolean,
): (value: Partial<Record<K, unknown>>, ctx: z.RefinementCtx) => void {
  return (value, ctx) => {
    const set = keys.filter((k) => value[k] !== undefined)
    const list = keys.join(', ')
    if (set.length > 1)
      ctx.addIssue({
        code: 'custom',
        path: [set[1] ?? keys[0]],
        message: `set only one of ${list} (also set: ${set[0] ?? ''})`,
      })
    else if (required && set.length === 0)
      ctx.addIssue({ code: 'custom', path: [keys[0]], message: `set one of ${list}` })
  }
}
