/**
 * `pullthrough sync [LIST...]`: asks a running server to run sync lists (all
 * of them when none is named), follows each with a progress bar showing the
 * artifact being fetched, and prints what each run did. The server does the
 * work: the runs go on (and show on /-/api/v1/sync) if this command stops.
 */
import { MultiBar, type SingleBar } from 'cli-progress'
import { formatBytes } from '../insight/format.ts'
import type { SyncListStatus } from '../sync/jobs.ts'
import type { SyncRun } from '../sync/list-run.ts'
import { ClientError, getJson, sendJson } from './api-client.ts'
import type { ClientOptions } from './commands.ts'
import { table } from './tables.ts'

/** How often the runs' status is read. */
export const SYNC_POLL_MS = 500
/** Status reads that may fail in a row (a restarting server) before the command gives up. */
const MAX_POLL_FAILURES = 10
/** Longest artifact name shown beside a bar. */
const MAX_SHOWN_NAME = 60

export interface SyncOptions extends ClientOptions {
  readonly lists: readonly string[]
  /** Where the progress bars go (stderr); no bars unless it is a terminal. */
  readonly progress: NodeJS.WriteStream
}

/** Resolves with the finished runs; a failed item or a run stopped early makes the exit code 1. */
export async function syncCommand(options: SyncOptions): Promise<SyncRun[]> {
  const started = (await sendJson(options.url, 'sync', options.token, {
    lists: options.lists,
  })) as { items: SyncListStatus[] }
  const names = started.items.map((s) => s.name)
  if (names.length === 0) throw new ClientError('the server has no sync lists (config key sync)')
  const startedAt = new Map(started.items.map((s) => [s.name, s.run?.startedAt]))
  const bars = options.progress.isTTY
    ? new MultiBar({
        stream: options.progress,
        format: '{list} [{bar}] {value}/{total} | {fetched} | {current}',
        hideCursor: true,
        clearOnComplete: false,
      })
    : undefined
  const bar = new Map<string, SingleBar | undefined>(
    names.map((name) => [
      name,
      bars?.create(1, 0, { list: name, fetched: '0 B', current: 'planning' }),
    ]),
  )
  let failures = 0
  let runs: SyncRun[] | undefined
  try {
    for (;;) {
      await new Promise((resolve) => setTimeout(resolve, SYNC_POLL_MS))
      let status: SyncListStatus[]
      try {
        status = (
          (await getJson(options.url, 'sync', options.token)) as { items: SyncListStatus[] }
        ).items
        failures = 0
      } catch (error) {
        if (++failures >= MAX_POLL_FAILURES) throw error
        continue
      }
      const mine = status.filter((s) => names.includes(s.name))
      for (const s of mine) {
        if (s.run?.startedAt !== startedAt.get(s.name))
          throw new ClientError(`the server restarted or ran ${s.name} again; see /-/api/v1/sync`)
        const run = s.run
        if (!run) continue
        const done = run.new + run.updated + run.unchanged + run.failed
        bar.get(s.name)?.setTotal(Math.max(run.planned, 1))
        bar.get(s.name)?.update(done, {
          fetched: formatBytes(run.bytes),
          current: shorten(run.current ?? (run.plannedAll ? 'done' : 'planning')),
        })
      }
      if (mine.every((s) => !s.running)) {
        runs = mine.flatMap((s) => (s.run ? [s.run] : []))
        break
      }
    }
  } finally {
    bars?.stop()
  }
  runs ??= []
  if (options.json) options.write(`${JSON.stringify(runs, null, 2)}\n`)
  else options.write(summary(runs))
  return runs
}

function shorten(name: string): string {
  return name.length <= MAX_SHOWN_NAME ? name : `…${name.slice(-(MAX_SHOWN_NAME - 1))}`
}

function summary(runs: readonly SyncRun[]): string {
  const lines = [
    table(
      ['list', 'new', 'updated', 'unchanged', 'failed', 'fetched', 'seconds'],
      runs.map((run) => [
        run.list,
        String(run.new),
        String(run.updated),
        String(run.unchanged),
        String(run.failed),
        formatBytes(run.bytes),
        (((run.finishedAt ?? run.startedAt) - run.startedAt) / 1000).toFixed(1),
      ]),
    ),
  ]
  for (const run of runs) {
    const failed = run.items.filter((i) => i.state === 'failed')
    if (failed.length > 0)
      lines.push(
        `\nFailed in ${run.list}:\n${failed.map((i) => `  ${i.name}: ${i.error ?? ''}\n`).join('')}`,
      )
    if (run.error !== null) lines.push(`\n${run.list} stopped early: ${run.error}\n`)
  }
  return lines.join('')
}
