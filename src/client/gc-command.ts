/**
 * `pullthrough gc [--dry-run]`: asks a running server to reconcile its
 * metadata with the disk and apply the retention rule, and prints what went
 * (or, with --dry-run, what would go).
 */
import type { GcGroup, GcReport } from '../cache/gc.ts'
import { formatBytes } from '../insight/format.ts'
import { sendJson } from './api-client.ts'
import type { ClientOptions } from './commands.ts'
import { table } from './tables.ts'

export async function gcCommand(options: ClientOptions & { dryRun: boolean }): Promise<GcReport> {
  const report = (await sendJson(options.url, 'gc', options.token, {
    dryRun: options.dryRun,
  })) as GcReport
  if (options.json) {
    options.write(`${JSON.stringify(report, null, 2)}\n`)
    return report
  }
  const row = (what: string, group: GcGroup) => [
    what,
    String(group.count),
    formatBytes(group.bytes),
  ]
  const unused =
    report.unused.unusedForMs > 0
      ? `not pulled for ${formatDays(report.unused.unusedForMs)}, deleted`
      : 'not pulled lately (no retention.unusedFor)'
  const rows = [
    row('records without a file, dropped', report.recordsWithoutFile),
    row('files without a record, recorded', report.filesWithoutRecord),
    row(unused, report.unused),
  ]
  rows.push(['abandoned temp files', String(report.tempFiles), ''])
  if (report.tags.keepTags > 0)
    rows.push([
      `tags beyond the newest ${report.tags.keepTags} per repository, dropped`,
      String(report.tags.count),
      '',
    ])
  options.write(
    `${report.dryRun ? 'Dry run: nothing was changed.\n' : ''}${table(['', 'count', 'size'], rows, ['count', 'size'])}`,
  )
  if (report.pinned > 0) options.write(`${report.pinned} unused blobs were kept: pinned.\n`)
  if (report.tags.pinned > 0)
    options.write(`${report.tags.pinned} tags were kept whatever their age: pinned.\n`)
  if (report.spared > 0)
    options.write(
      `${report.spared} unused blobs were spared: being read, or read lately elsewhere.\n`,
    )
  const listed = [
    ['Dropped records', report.recordsWithoutFile],
    ['Deleted blobs', report.unused],
  ] as const
  for (const [title, group] of listed) list(title, group.digests, group.count)
  list('Dropped tags', report.tags.names, report.tags.count)
  return report

  function list(title: string, names: readonly string[], count: number): void {
    if (names.length === 0) return
    const more = count > names.length ? `  … and ${count - names.length} more\n` : ''
    options.write(
      `\n${report.dryRun ? `${title} (would be)` : title}:\n${names.map((d) => `  ${d}\n`).join('')}${more}`,
    )
  }
}

function formatDays(ms: number): string {
  const days = ms / 86_400_000
  return Number.isInteger(days) ? `${days} days` : `${(ms / 3_600_000).toFixed(1)} hours`
}
