/** Numbers and times as people read them, for the CLI's tables and the status page. */

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB']

/** 1536 -> "1.5 KiB"; whole bytes below 1 KiB. */
export function formatBytes(bytes: number): string {
  let value = bytes
  let unit = 0
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024
    unit++
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(1)} ${UNITS[unit] ?? ''}`
}

/** 0.756 -> "75.6%"; "-" when there is no ratio. */
export function formatRatio(ratio: number | null): string {
  return ratio === null ? '-' : `${(ratio * 100).toFixed(1)}%`
}

/** A time as "2026-12-02 19:43" (UTC), or "-" for 0. */
export function formatTime(ms: number): string {
  return ms === 0 ? '-' : new Date(ms).toISOString().slice(0, 16).replace('T', ' ')
}
