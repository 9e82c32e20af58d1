/**
 * `pullthrough verify`: asks a running server to scrub its store (re-hash
 * every blob at a bounded rate, quarantine mismatches), follows the run with a
 * progress bar, and prints what it found. The server does the work, so the
 * run goes on (and is shown on /-/api/v1/verify) if this command is stopped.
 */
import { SingleBar } from 'cli-progress'
import type { ScrubRun, ScrubStatus } from '../cache/scrub.ts'
import { formatBytes } from '../insight/format.ts'
import { ClientError, getJson, sendJson } from './api-client.ts'
import type { ClientOptions } from './commands.ts'
import { table } from './tables.ts'

/** How often the run's status is read. */
export const VERIFY_POLL_MS = 500
/** Status reads that may fail in a row (a restarting server) before the command gives up. */
const MAX_POLL_FAILURES = 10

export interface VerifyOptions extends ClientOptions {
  /** `--rate` as given (`100MB/s`); the server's `scrub.rate` when undefined. */
  readonly rate: string | undefined
  /** Where the progress bar goes (stderr); no bar unless it is a terminal. */
  readonly progress: NodeJS.WriteStream
}

/** Resolves with the finished run; its `corrupt` count decides the exit code. */
export async function verifyCommand(options: VerifyOptions): Promise<ScrubRun> {
  const body = options.rate === undefined ? {} : { rate: options.rate }
  const started = (await sendJson(options.url, 'verify', options.token, body)) as ScrubStatus
  const startedAt = started.run?.startedAt
  const total = started.run?.total.bytes ?? 0
  const bar = options.progress.isTTY
    ? new SingleBar({
        stream: options.progress,
        format:
          'verify [{bar}] {percentage}% | {done} of {size} | {blobs} blobs | {corrupt} corrupt',
        hideCursor: true,
      })
    : undefined
  const fields = (run: ScrubRun) => ({
    done: formatBytes(run.bytes),
    size: formatBytes(run.total.bytes),
    blobs: run.blobs,
    corrupt: run.corrupt,
  })
  if (started.run) bar?.start(Math.max(total, 1), 0, fields(started.run))
  let failures = 0
  let run: ScrubRun | null
  try {
    for (;;) {
      await new Promise((resolve) => setTimeout(resolve, VERIFY_POLL_MS))
      let status: ScrubStatus
      try {
        status = (await getJson(options.url, 'verify', options.token)) as ScrubStatus
        failures = 0
      } catch (error) {
        if (++failures >= MAX_POLL_FAILURES) throw error
        continue
      }
      if (status.run?.startedAt !== startedAt)
        throw new ClientError('the server restarted or started another scrub; see /-/api/v1/verify')
      run = status.run
      if (run) bar?.update(Math.min(run.bytes, Math.max(total, 1)), fields(run))
      if (!status.running) break
    }
  } finally {
    bar?.stop()
  }
  if (!run) throw new ClientError('the server reported no scrub run')
  if (options.json) options.write(`${JSON.stringify(run, null, 2)}\n`)
  else options.write(summary(run))
  return run
}

function summary(run: ScrubRun): string {
  const seconds = ((run.finishedAt ?? run.startedAt) - run.startedAt) / 1000
  const lines = [
    table(
      ['checked', 'ok', 'corrupt (quarantined)', 'skipped', 'read', 'seconds'],
      [
        [
          String(run.blobs),
          String(run.ok),
          String(run.corrupt),
          String(run.skipped),
          formatBytes(run.bytes),
          seconds.toFixed(1),
        ],
      ],
    ),
  ]
  if (run.corruptDigests.length > 0)
    lines.push(
      `\nQuarantined (removed; the next pull fetches them again):\n${run.corruptDigests
        .map((d) => `  ${d}\n`)
        .join('')}`,
    )
  if (run.error !== null) lines.push(`\nThe scrub stopped early: ${run.error}\n`)
  return lines.join('')
}
