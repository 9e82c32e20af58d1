/**
 * Blobs written and verified now, committed together later or thrown away
 * together: an import stages every blob of a bundle and commits only once the
 * whole bundle has checked out, so a bad bundle leaves the store as it was.
 *
 * The staging directory lives under tmp/, where replicas sweep what is
 * untouched for STALE_TEMP_MS (a dead process's leftovers): it is touched
 * every STAGING_TOUCH_MS while it lives, so a long import is never swept.
 */
import { pipeline } from 'node:stream/promises'
import type * as nodeFs from 'node:fs/promises'
import type { Writable } from 'node:stream'
import { parseDigest, type Digest } from './digest.ts'

/** How often a live staging directory's mtime is renewed (well under STALE_TEMP_MS). */
export const STAGING_TOUCH_MS = 60_000

/** What staging needs of a blob writer (blob-store.ts's BlobWriter). */
export interface StagedWriter extends Writable {
  seal(expected: string): Promise<{ size: number }>
  commit(expected: string): Promise<{ size: number }>
  abort(): Promise<void>
}

export class BlobStaging {
  readonly #sealed = new Map<Digest, StagedWriter>()
  readonly #touch: NodeJS.Timeout
  #closed = false

  constructor(
    readonly dir: string,
    private readonly fs: Pick<typeof nodeFs, 'utimes' | 'rm'>,
    /** A writer in `dir` of content expected to hash to `expected`. */
    private readonly newWriter: (dir: string, expected: Digest) => Promise<StagedWriter>,
    touchMs = STAGING_TOUCH_MS,
  ) {
    this.#touch = setInterval(() => {
      const now = new Date()
      this.fs.utimes(this.dir, now, now).catch(() => undefined)
    }, touchMs)
    this.#touch.unref()
  }

  /**
   * Writes `source` to the staging directory and checks it against `digest`:
   * DigestMismatchError (and nothing kept) when it does not match.
   */
  async write(
    digest: string,
    source: AsyncIterable<Uint8Array> | NodeJS.ReadableStream,
  ): Promise<{ size: number }> {
    const expected = parseDigest(digest)
    if (this.#closed) throw new Error('the staging area is closed')
    const writer = await this.newWriter(this.dir, expected)
    try {
      await pipeline(source, writer)
    } catch (error) {
      await writer.abort().catch(() => undefined)
      throw error
    }
    const sealed = await writer.seal(expected)
    const before = this.#sealed.get(expected)
    this.#sealed.set(expected, writer)
    await before?.abort()
    return sealed
  }

  /** Moves every staged blob into the store; `committed` is told of each. */
  async commit(committed: (digest: Digest, size: number) => Promise<void>): Promise<void> {
    for (const [digest, writer] of this.#sealed) {
      const { size } = await writer.commit(digest)
      this.#sealed.delete(digest)
      await committed(digest, size)
    }
  }

  /** Throws away what is still staged, and the directory. Safe to call more than once. */
  async discard(): Promise<void> {
    this.#closed = true
    clearInterval(this.#touch)
    for (const writer of this.#sealed.values()) await writer.abort().catch(() => undefined)
    this.#sealed.clear()
    await this.fs.rm(this.dir, { recursive: true, force: true })
  }
}
