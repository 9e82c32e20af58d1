/**
 * The embedded store's lock: one process uses a metadata directory at a time.
 * The lock file names the holder (`{ pid, host }`) and the holder touches it
 * every few seconds. A lock is taken over when its holder is provably gone:
 * the same host and no such process; the same host and our own PID (a
 * container restarted as PID 1 again, which `kill -0` would call alive); or
 * no heartbeat for LOCK_STALE_MS (a holder on another host, say a pod
 * replaced after a crash, whose PID means nothing here).
 */
import { hostname } from 'node:os'
import { readFile, rm, stat, utimes, writeFile } from 'node:fs/promises'
import { MetadataLockedError } from './errors.ts'

/** How often the holder touches its lock. */
export const LOCK_HEARTBEAT_MS = 5_000
/** A lock untouched this long is abandoned, whoever wrote it. */
export const LOCK_STALE_MS = 30_000

/**
 * Directories this process holds. The lock is process-wide state by nature: it
 * tells our own live lock from a dead incarnation's that carries the same PID.
 */
const HELD = new Set<string>()

interface Holder {
  readonly pid: number
  readonly host: string | undefined
}

export class DirLock {
  readonly #timer: NodeJS.Timeout

  private constructor(private readonly path: string) {
    this.#timer = setInterval(() => {
      const now = new Date()
      utimes(path, now, now).catch(() => undefined)
    }, LOCK_HEARTBEAT_MS).unref()
  }

  /** Takes the lock at `path`; MetadataLockedError while a live holder has it. */
  static async take(path: string, now: () => number = Date.now): Promise<DirLock> {
    if (HELD.has(path)) throw new MetadataLockedError(process.pid)
    const content = JSON.stringify({ pid: process.pid, host: hostname() })
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        await writeFile(path, content, { flag: 'wx' })
        HELD.add(path)
        return new DirLock(path)
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
      }
      const holder = await readHolder(path)
      if (holder && !(await isAbandoned(path, holder, now())))
        throw new MetadataLockedError(holder.pid, holder.host)
      await rm(path, { force: true })
    }
    throw new MetadataLockedError(0)
  }

  async release(): Promise<void> {
    clearInterval(this.#timer)
    HELD.delete(this.path)
    await rm(this.path, { force: true })
  }
}

/** The holder named in the lock file; the PID alone in locks written before hosts were recorded. */
async function readHolder(path: string): Promise<Holder | undefined> {
  const text = (await readFile(path, 'utf8').catch(() => '')).trim()
  if (/^\d+$/.test(text)) return { pid: Number(text), host: undefined }
  try {
    const parsed = JSON.parse(text) as { pid?: unknown; host?: unknown }
    if (typeof parsed.pid === 'number' && Number.isInteger(parsed.pid))
      return { pid: parsed.pid, host: typeof parsed.host === 'string' ? parsed.host : undefined }
  } catch {
    // unreadable: treated as no holder
  }
  return undefined
}

async function isAbandoned(path: string, holder: Holder, now: number): Promise<boolean> {
  const touched = await stat(path).then(
    (s) => s.mtimeMs,
    () => 0,
  )
  if (now - touched > LOCK_STALE_MS) return true
  if (holder.host !== undefined && holder.host !== hostname()) return false
  // Our own PID, and we do not hold it: a previous incarnation of this container.
  if (holder.pid === process.pid) return true
  return !(holder.pid > 0 && isAlive(holder.pid))
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}
