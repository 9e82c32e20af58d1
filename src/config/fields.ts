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
