/**
 * tmp/ under storage.path: where every blob store writes blobs in progress.
 * Fills, imports and manifests are written (and hashed) here, and readers of a
 * fill follow the temp file while it grows; a writer's commit then publishes
 * the verified file (the filesystem store renames it into blobs/, the S3 store
 * uploads it). Anything here at start-up is garbage.
 */
import { randomBytes } from 'node:crypto'
import * as nodeFs from 'node:fs/promises'
import { join } from 'node:path'
import { BlobStaging, STAGING_TOUCH_MS } from './blob-staging.ts'
import { BlobWriter, type Publisher } from './blob-writer.ts'
import type { Digest } from './digest.ts'
import { StorageWriteError, errorCode } from './errors.ts'
import type { ScavengePacer } from './scavenge-pacer.ts'

/**
 * A temp file untouched this long is abandoned (its process died): a live
 * download writes continuously, and one that stalls is given up within
 * seconds (`timeouts.bodyIdle`).
 */
export const STALE_TEMP_MS = 10 * 60_000

/** The filesystem calls a spool makes. */
export type SpoolFs = Pick<
  typeof nodeFs,
  'open' | 'stat' | 'unlink' | 'mkdir' | 'readdir' | 'rm' | 'utimes'
>

export class Spool {
  private constructor(
    readonly dir: string,
    private readonly fs: SpoolFs,
    private readonly pacer: ScavengePacer,
  ) {}

  /**
   * Opens (creating if needed) `dir` and removes leftovers: everything when
   * only this process uses it, else (`shared`, replicas on one volume) only
   * what is untouched for STALE_TEMP_MS, the rest being other replicas' downloads.
   */
  static async open(
    dir: string,
    options: { fs: SpoolFs; pacer: ScavengePacer; shared?: boolean; now?: () => number },
  ): Promise<Spool> {
    const { fs } = options
    if (options.shared) {
      await removeStaleTemps(fs, dir, (options.now ?? Date.now)() - STALE_TEMP_MS)
    } else {
      await fs.rm(dir, { recursive: true, force: true })
    }
    await fs.mkdir(dir, { recursive: true })
    return new Spool(dir, fs, options.pacer)
  }

  /** A writer to a new temp file in `dir` (default: the spool itself), published by `publisherFor(its path)`. */
  async createWriter(
    publisherFor: (tempPath: string) => Publisher,
    dir = this.dir,
  ): Promise<BlobWriter> {
    const tempPath = join(dir, `${randomBytes(12).toString('hex')}.part`)
    let fh: nodeFs.FileHandle
    try {
      fh = await this.fs.open(tempPath, 'wx')
    } catch (error) {
      throw new StorageWriteError(`cannot create a temp file (${errorCode(error)})`, {
        cause: error,
      })
    }
    return new BlobWriter(tempPath, fh, this.fs, publisherFor(tempPath), this.pacer)
  }

  /**
   * A directory in the spool for blobs written and verified now and committed
   * together later (an import), or thrown away together; its directory is
   * touched every `touchMs` while it lives.
   */
  async createStaging(
    publisherFor: (tempPath: string, expected: Digest) => Publisher,
    touchMs = STAGING_TOUCH_MS,
  ): Promise<BlobStaging> {
    const dir = join(this.dir, `staging-${randomBytes(8).toString('hex')}`)
    await this.fs.mkdir(dir)
    return new BlobStaging(
      dir,
      this.fs,
      (into, expected) => this.createWriter((path) => publisherFor(path, expected), into),
      touchMs,
    )
  }

  /**
   * Removes temp files untouched for STALE_TEMP_MS (downloads of a process that
   * died) and returns how many; with `dryRun`, only counts them.
   */
  async removeStaleTemps(now = Date.now(), options: { dryRun?: boolean } = {}): Promise<number> {
    return removeStaleTemps(this.fs, this.dir, now - STALE_TEMP_MS, options.dryRun)
  }

  /** Proves the spool can take writes now (for /readyz): write, fsync and remove a probe file. */
  async checkWritable(): Promise<void> {
    const probe = join(this.dir, `.probe-${randomBytes(6).toString('hex')}`)
    try {
      const fh = await this.fs.open(probe, 'wx')
      try {
        await fh.write(Buffer.from('ok'))
        await fh.sync()
      } finally {
        await fh.close()
      }
      await this.fs.unlink(probe)
    } catch (error) {
      await this.fs.rm(probe, { force: true }).catch(() => undefined)
      throw new StorageWriteError(`storage is not writable (${errorCode(error)})`, { cause: error })
    }
  }
}

/** Removes (or with `dryRun` counts) the files in `dir` last modified before `before` (ms since the epoch). */
async function removeStaleTemps(
  fs: SpoolFs,
  dir: string,
  before: number,
  dryRun = false,
): Promise<number> {
  let names: string[]
  try {
    names = await fs.readdir(dir)
  } catch (error) {
    if (errorCode(error) === 'ENOENT') return 0
    throw error
  }
  let removed = 0
  for (const name of names) {
    const path = join(dir, name)
    const stat = await fs.stat(path).catch(() => undefined)
    if (stat && stat.mtimeMs < before) {
      if (!dryRun) await fs.rm(path, { force: true, recursive: true })
      removed++
    }
  }
  return removed
}
