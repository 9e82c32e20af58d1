/**
 * docs/grafana-dashboard.json queries only metrics and labels the server
 * exports (src/observability/metrics.ts and Node's default metrics), each of
 * them written somewhere in src/ (a declared metric nothing increments shows a
 * flat line an operator would trust), and covers what an operator watches. No
 * Prometheus or Grafana runs here: queries are checked by name, not executed.
 */
import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Counter, Gauge, Histogram, Registry, type Metric } from 'prom-client'
import t from 'tap'
import { createMetrics, type Metrics } from '../../src/observability/metrics.ts'
import { isTree, ROOT, type Tree } from './files.ts'

/** Labels Prometheus adds (target labels) or histograms have; not the server's. */
const PROMETHEUS_LABELS = new Set(['job', 'instance', 'le'])
const HISTOGRAM_SUFFIXES = /_(bucket|sum|count)$/

interface Panel {
  id: number
  type: string
  title: string
  gridPos: { x: number; y: number; w: number; h: number }
  targets?: { expr: string; refId: string }[]
}

/** Records one zero sample: prom-client refuses a label the metric was not declared with. */
function record(metric: Metric, labels: Record<string, string>): void {
  if (metric instanceof Counter) metric.inc(labels, 0)
  else if (metric instanceof Gauge) metric.inc(labels, 0)
  else if (metric instanceof Histogram) metric.observe(labels, 0)
  else throw new Error('not a counter, gauge or histogram')
}

async function dashboard(): Promise<Tree & { panels: Panel[] }> {
  const text = await readFile(join(ROOT, 'docs', 'grafana-dashboard.json'), 'utf8')
  return JSON.parse(text) as Tree & { panels: Panel[] }
}

async function queries(): Promise<string[]> {
  return (await dashboard()).panels.flatMap((p) => (p.targets ?? []).map((target) => target.expr))
}

/** Metric name -> label names used with it in one query (`by (...)` and `{l="..."}`). */
function usages(expr: string): Map<string, Set<string>> {
  const used = new Map<string, Set<string>>()
  const byLabels = [...expr.matchAll(/\bby \(([^)]*)\)/g)].flatMap((m) =>
    (m[1] ?? '').split(',').map((l) => l.trim()),
  )
  for (const m of expr.matchAll(/\b(pullthrough_\w+)(\{([^}]*)\})?/g)) {
    const name = (m[1] ?? '').replace(HISTOGRAM_SUFFIXES, '')
    const labels = used.get(name) ?? new Set<string>()
    for (const matcher of (m[3] ?? '').matchAll(/(\w+)\s*(=~|!~|!=|=)/g))
      labels.add(matcher[1] ?? '')
    for (const label of byLabels) labels.add(label)
    used.set(name, labels)
  }
  return used
}

t.test('every metric the dashboard queries is exported, with the labels it uses', async (t) => {
  const registry = new Registry()
  createMetrics(registry)
  const exported = new Set((await registry.getMetricsAsJSON()).map((m) => m.name))
  const exprs = await queries()
  t.ok(exprs.length >= 25, `${exprs.length} queries`)
  for (const expr of exprs) {
    for (const [name, labels] of usages(expr)) {
      const metric = registry.getSingleMetric(name)
      t.ok(exported.has(name) && metric, `${name} is exported`)
      const own = [...labels].filter((l) => !PROMETHEUS_LABELS.has(l))
      if (!metric || own.length === 0) continue
      t.doesNotThrow(
        () => record(metric, Object.fromEntries(own.map((l) => [l, 'x']))),
        `${name} has labels ${own.join(', ')}`,
      )
    }
  }
})

/** Every .ts file under src/, as text. */
async function sources(): Promise<string[]> {
  const files = await readdir(join(ROOT, 'src'), { recursive: true })
  return Promise.all(
    files.filter((f) => f.endsWith('.ts')).map((f) => readFile(join(ROOT, 'src', f), 'utf8')),
  )
}

/** What writes a sample: on the metric, on its `.labels(...)` child, or a BatchedCounter's `.series(...)`. */
const WRITES = '(?:inc|dec|set|observe|startTimer|setToCurrentTime|labels|series)'

/**
 * The dashboard metrics (of `names`) defined in metrics.ts that no source
 * writes: no `<property>.inc(`, `.set(`, `.observe(`... for the Metrics
 * property holding it. Others (Node's default metrics) are written by prom-client.
 */
function unwritten(names: Iterable<string>, metrics: Metrics, texts: string[]): string[] {
  const property = (name: string) => {
    const metric = metrics.registry.getSingleMetric(name)
    return Object.entries(metrics).find(([, value]) => value === metric)?.[0]
  }
  return [...names].filter((name) => {
    const key = property(name)
    if (key === undefined) return false
    const write = new RegExp(`\\b${key}\\s*(?:\\?\\.|\\.)\\s*${WRITES}\\s*\\(`)
    return !texts.some((text) => write.test(text))
  })
}

t.test('every metric the dashboard queries is written somewhere, not only declared', async (t) => {
  const metrics = createMetrics(new Registry())
  const names = new Set((await queries()).flatMap((expr) => [...usages(expr).keys()]))
  const texts = await sources()
  t.same(unwritten(names, metrics, texts), [], 'no dashboard metric is dead')

  // The check can fail: without its writes (as on main before A4 was fixed), the
  // metadata error counter is reported.
  const withoutWrites = texts.map((text) => text.replace(/metadataErrors\s*\.\s*inc\(/g, 'x('))
  t.same(unwritten(names, metrics, withoutWrites), ['pullthrough_metadata_errors_total'])
})

t.test('the dashboard shows what the operations guide promises', async (t) => {
  const exprs = (await queries()).join('\n')
  for (const metric of [
    'pullthrough_cache_requests_total', // pull rate, hit ratio
    'pullthrough_bytes_served_total', // bytes by source
    'pullthrough_upstream_request_duration_seconds_bucket', // upstream latency per mirror
    'pullthrough_upstream_errors_total', // errors per mirror
    'pullthrough_upstream_failovers_total',
    'pullthrough_upstream_resumes_total',
    'pullthrough_digest_mismatch_total',
    'pullthrough_cache_size_bytes', // size vs cap
    'pullthrough_cache_max_size_bytes',
    'pullthrough_evictions_total',
  ]) {
    t.match(exprs, metric, `queries ${metric}`)
  }
})

t.test('the dashboard is importable: data source variable, unique ids, no overlaps', async (t) => {
  const board = await dashboard()
  t.equal(board.uid, 'pullthrough')
  const variables = (board.templating as { list: Tree[] }).list
  t.ok(variables.some((v) => v.type === 'datasource' && v.query === 'prometheus'))
  const ids = board.panels.map((p) => p.id)
  t.equal(new Set(ids).size, ids.length, 'panel ids are unique')
  const cells = new Map<string, string>()
  const overlaps: string[] = []
  for (const panel of board.panels) {
    const { x, y, w, h } = panel.gridPos
    t.ok(x + w <= 24, `${panel.title} fits the 24-column grid`)
    for (let row = y; row < y + h; row++) {
      for (let col = x; col < x + w; col++) {
        const cell = `${String(row)}:${String(col)}`
        const other = cells.get(cell)
        if (other !== undefined) overlaps.push(`${panel.title} / ${other} at ${cell}`)
        cells.set(cell, panel.title)
      }
    }
    for (const target of panel.targets ?? []) {
      t.ok(isTree(target) && target.refId !== '', `${panel.title}: target has a refId`)
    }
  }
  t.same(overlaps, [], 'no two panels overlap')
})
