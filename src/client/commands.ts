/**
 * `pullthrough stats` and `pullthrough ls`: what a running server's API
 * answers, as aligned tables for a terminal or as its JSON for scripts.
 */
import type { Summary, SubjectRow, Usage, WindowName } from '../insight/statistics.ts'
import { getJson } from './api-client.ts'
import { formatBytes, formatRatio, formatTime } from '../insight/format.ts'
import { table } from './tables.ts'

export interface ClientOptions {
  readonly url: string
  readonly token: string | undefined
  readonly json: boolean
  readonly write: (text: string) => void
}

interface SummaryAnswer {
  readonly windows: Record<WindowName, Summary>
  readonly disk: {
    readonly usedBytes: number
    readonly maxBytes: number
    readonly artifacts: number
  }
}

export async function statsCommand(options: ClientOptions): Promise<void> {
  const answer = (await getJson(options.url, 'summary', options.token)) as SummaryAnswer
  if (options.json) {
    options.write(`${JSON.stringify(answer, null, 2)}\n`)
    return
  }
  const rows: string[][] = []
  for (const [window, summary] of Object.entries(answer.windows))
    for (const protocol of ['docker', 'pypi', 'all'] as const)
      rows.push([window, protocol, ...usageCells(summary[protocol])])
  options.write(
    table(
      [
        'window',
        'protocol',
        'pulls',
        'hit ratio',
        'served',
        'from cache',
        'from upstream',
        'clients',
      ],
      rows,
      ['pulls', 'hit ratio', 'served', 'from cache', 'from upstream', 'clients'],
    ),
  )
  const { disk } = answer
  const share = disk.maxBytes === 0 ? '' : ` (${formatRatio(disk.usedBytes / disk.maxBytes)})`
  options.write(
    `\ndisk: ${formatBytes(disk.usedBytes)} of ${formatBytes(disk.maxBytes)}${share}, ${disk.artifacts} artifacts\n`,
  )
}

export const LS_SORTS = { pulls: 'pulls', size: 'bytes', last: 'last' } as const

export interface LsOptions extends ClientOptions {
  /** Both when undefined. */
  readonly protocol: 'docker' | 'pypi' | undefined
  readonly sort: keyof typeof LS_SORTS
  readonly window: string
  readonly limit: number
}

export async function lsCommand(options: LsOptions): Promise<void> {
  const paths = (
    [
      ['docker', 'repositories'],
      ['pypi', 'projects'],
    ] as const
  ).filter(([protocol]) => options.protocol === undefined || options.protocol === protocol)
  const query = `sort=${LS_SORTS[options.sort]}&window=${encodeURIComponent(options.window)}&limit=${options.limit}`
  const answers = await Promise.all(
    paths.map(
      async ([, path]) =>
        (await getJson(options.url, `${path}?${query}`, options.token)) as {
          items: SubjectRow[]
          total: number
        },
    ),
  )
  if (options.json) {
    const items = answers.flatMap((a) => a.items)
    options.write(`${JSON.stringify({ items }, null, 2)}\n`)
    return
  }
  const rows = answers.flatMap((a) =>
    a.items.map((row) => [
      row.protocol,
      row.pool,
      row.name,
      ...usageCells(row).slice(0, 3),
      formatTime(row.lastPulled),
    ]),
  )
  if (rows.length === 0) {
    options.write(`nothing pulled in the last ${options.window}\n`)
    return
  }
  options.write(
    table(['protocol', 'pool', 'name', 'pulls', 'hit ratio', 'served', 'last pulled'], rows, [
      'pulls',
      'hit ratio',
      'served',
    ]),
  )
  const shown = rows.length
  const total = answers.reduce((sum, a) => sum + a.total, 0)
  if (total > shown) options.write(`(${shown} of ${total}; --limit for more)\n`)
}

function usageCells(usage: Usage): string[] {
  return [
    String(usage.pulls.total),
    formatRatio(usage.hitRatio),
    formatBytes(usage.bytesServed),
    formatBytes(usage.bytesFromCache),
    formatBytes(usage.bytesFromUpstream),
    String(usage.clients),
  ]
}
