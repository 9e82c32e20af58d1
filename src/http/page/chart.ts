/**
 * Charts drawn on the server as SVG: they need no script (the page works with
 * JavaScript off and its CSP allows none) and no library.
 */
import type { SeriesPoint } from '../../insight/statistics.ts'
import { HOUR_MS } from '../../metadata/statistics.ts'
import { html, type Html } from './html.ts'

const WIDTH = 720
const HEIGHT = 170
const AXIS = 18
const RESULTS = ['hit', 'revalidated', 'stale', 'miss'] as const

/** Pulls per hour over `hours` hours ending now, stacked by cache result. */
export function pullsChart(points: readonly SeriesPoint[], now: number, hours: number): Html {
  const last = now - (now % HOUR_MS)
  const first = last - (hours - 1) * HOUR_MS
  const slots = Array.from({ length: hours }, () => ({ hit: 0, revalidated: 0, stale: 0, miss: 0 }))
  for (const point of points) {
    const slot = slots[Math.round((point.start - first) / HOUR_MS)]
    if (!slot) continue
    for (const result of RESULTS) slot[result] += point.usage.pulls[result]
  }
  const totals = slots.map((s) => s.hit + s.revalidated + s.stale + s.miss)
  const max = Math.max(1, ...totals)
  const slotWidth = WIDTH / hours
  const plot = HEIGHT - AXIS
  const bars = slots.map((slot, i) => {
    let y = plot
    const x = i * slotWidth + 1
    const start = new Date(first + i * HOUR_MS).toISOString().slice(11, 16)
    const parts = RESULTS.map((result) => {
      const h = (slot[result] / max) * (plot - 4)
      y -= h
      return h > 0
        ? html`<rect
            class="${result}"
            x="${x.toFixed(1)}"
            y="${y.toFixed(1)}"
            width="${(slotWidth - 2).toFixed(1)}"
            height="${h.toFixed(1)}"
          ></rect>`
        : html``
    })
    const label = `${start} UTC: ${totals[i] ?? 0} pulls (${slot.hit} hit, ${slot.miss} miss, ${slot.stale} stale, ${slot.revalidated} revalidated)`
    return html`<g><title>${label}</title>${parts}</g>`
  })
  const ticks = slots.flatMap((_, i) =>
    i % 6 === 0
      ? [
          html`<text x="${(i * slotWidth + 2).toFixed(1)}" y="${HEIGHT - 4}"
            >${new Date(first + i * HOUR_MS).toISOString().slice(11, 16)}</text
          >`,
        ]
      : [],
  )
  return html`<svg
      class="chart"
      viewBox="0 0 ${WIDTH} ${HEIGHT}"
      role="img"
      aria-label="Pulls per hour, last ${hours} hours, peak ${max}"
    >
      <text x="4" y="12">peak ${max} pulls/h</text>
      ${bars}${ticks}
    </svg>
    <p class="legend">
      <span class="result hit">hit</span><span class="result revalidated">revalidated</span
      ><span class="result stale">stale</span><span class="result miss">miss</span>
    </p>`
}

/** A horizontal bar: `used` of `max`. */
export function usageBar(used: number, max: number): Html {
  const share = max <= 0 ? 0 : Math.min(1, used / max)
  return html`<svg
    class="bar"
    viewBox="0 0 300 10"
    preserveAspectRatio="none"
    role="img"
    aria-label="${(share * 100).toFixed(1)}% used"
  >
    <rect
      x="0"
      y="0"
      width="300"
      height="10"
      rx="5"
      class="track"
      fill="currentColor"
      fill-opacity="0.15"
    ></rect>
    <rect x="0" y="0" width="${(300 * share).toFixed(1)}" height="10" rx="5" class="hit"></rect>
  </svg>`
}
