/**
 * Human units in config: sizes (`50GiB`, `512MiB`, `10GB`, plain bytes) and
 * durations (`5m`, `30s`, `250ms`, `1h`, `7d`, plain milliseconds).
 * Binary (KiB, MiB, ...) and decimal (KB, MB, ...) suffixes mean what they say.
 */

const SIZE_UNITS: Readonly<Record<string, number>> = {
  b: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  tb: 1e12,
  kib: 2 ** 10,
  mib: 2 ** 20,
  gib: 2 ** 30,
  tib: 2 ** 40,
}

const DURATION_UNITS: Readonly<Record<string, number>> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
}

const QUANTITY_RE = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i

function parseQuantity(
  input: string | number,
  units: Readonly<Record<string, number>>,
  bareUnit: string,
): number | undefined {
  if (typeof input === 'number') return Number.isFinite(input) && input >= 0 ? input : undefined
  const match = QUANTITY_RE.exec(input)
  if (!match) return undefined
  const factor = units[(match[2] ?? '').toLowerCase() || bareUnit]
  if (factor === undefined) return undefined
  const value = Number(match[1]) * factor
  return Number.isSafeInteger(Math.round(value)) ? Math.round(value) : undefined
}

/** Bytes from `50GiB`, `512MiB`, `10GB`, `1024` or a number; undefined when unparseable. */
export function parseSize(input: string | number): number | undefined {
  return parseQuantity(input, SIZE_UNITS, 'b')
}

/** Milliseconds from `5m`, `30s`, `250ms` or a number of ms; undefined when unparseable. */
export function parseDuration(input: string | number): number | undefined {
  return parseQuantity(input, DURATION_UNITS, 'ms')
}

/** Formats bytes for humans, binary units (`1.5 GiB`). */
export function formatSize(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let value = bytes
  let unit = 0
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024
    unit++
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit] ?? 'B'}`
}
