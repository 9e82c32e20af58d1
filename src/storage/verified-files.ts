/**
 * Blobs whose file was verified since it last changed (storage.verifyOnRead:
 * changed). A read of such a file is served without hashing it again; silent
 * corruption of a file whose identity did not change is left to the scrub.
 *
 * The identity is taken before the bytes are hashed: device, inode, size,
 * mtime and ctime in nanoseconds. Writing to the file, replacing it or
 * touching its times changes the ctime, which no process can set back, so a
 * file changed after its verification is verified again on its next read.
 *
 * With a directory, each verification is also written there, one small file
 * per blob (`<dir>/<first two hex>/<64 hex>` holding the identity), so a
 * restart does not hash every blob again on its first read. A record is only
 * ever trusted when it equals the identity of the file being read now, so a
 * stale, torn or lost record costs one hash and can never vouch for a file
 * that changed: that is why records are written without fsync and failures to
 * write or remove one are ignored.
 */
import * as nodeFs from 'node:fs/promises'
import type { BigIntStats } from 'node:fs'
import { dirname, join } from 'node:path'
import { digestHex, type Digest } from './digest.ts'

/**
 * Files remembered in memory at most (about 200 bytes each); the least
 * recently read are forgotten first and looked up in the directory (or
 * hashed again) on their next read.
 */
export const MAX_VERIFIED_FILES = 100_000

/** Device, inode, size, mtime and ctime of an open file. */
export function contentIdentity(
  stat: Pick<BigIntStats, 'dev' | 'ino' | 'size' | 'mtimeNs' | 'ctimeNs'>,
): string {
  return [stat.dev, stat.ino, stat.size, stat.mtimeNs, stat.ctimeNs].map(String).join(':')
}

/** Device and inode of an open file: which file it is, whatever its content. */
export function fileIdentity(stat: Pick<BigIntStats, 'dev' | 'ino'>): string {
  return `${String(stat.dev)}:${String(stat.ino)}`
}

export class VerifiedFiles {
  readonly #identities = new Map<string, string>()

  constructor(
    /** Where verifications are kept across restarts; undefined: in memory only. */
    private readonly dir?: string,
    private readonly max = MAX_VERIFIED_FILES,
  ) {}

  /** Whether `digest`'s file was verified with this identity (and marks it recently read). */
  async matches(digest: Digest, identity: string): Promise<boolean> {
    if (this.#identities.get(digest) === identity) {
      this.#remember(digest, identity)
      return true
    }
    if (this.dir === undefined || (await this.#read(digest)) !== identity) return false
    this.#remember(digest, identity)
    return true
  }

  /** Records that the file with `identity` hashed to `digest`. */
  async record(digest: Digest, identity: string): Promise<void> {
    this.#remember(digest, identity)
    if (this.dir === undefined) return
    const path = this.#path(digest)
    try {
      await nodeFs.mkdir(dirname(path), { recursive: true })
      await nodeFs.writeFile(path, identity)
    } catch {
      // Not kept: the next process hashes the file once more.
    }
  }

  /** The file is no longer known good (corrupt, deleted). */
  async forget(digest: Digest): Promise<void> {
    this.#identities.delete(digest)
    if (this.dir === undefined) return
    // A record left behind vouches only for this very file (a new one has another
    // identity), and a blob found corrupt is quarantined: its file is removed.
    await nodeFs.unlink(this.#path(digest)).catch(() => undefined)
  }

  /** Verifications held in memory. */
  get size(): number {
    return this.#identities.size
  }

  #remember(digest: string, identity: string): void {
    this.#identities.delete(digest)
    this.#identities.set(digest, identity)
    if (this.#identities.size > this.max) {
      const oldest = this.#identities.keys().next().value
      if (oldest !== undefined) this.#identities.delete(oldest)
    }
  }

  /** The recorded identity of `digest`, or undefined when there is none (or it cannot be read). */
  async #read(digest: Digest): Promise<string | undefined> {
    return nodeFs.readFile(this.#path(digest), 'utf8').catch(() => undefined)
  }

  #path(digest: Digest): string {
    const hex = digestHex(digest)
    return join(this.dir ?? '', hex.slice(0, 2), hex)
  }
}
