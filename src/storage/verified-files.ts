/**
 * Blobs whose file was verified since it last changed (storage.verifyOnRead:
 * changed). A read of such a file is served without hashing it again; silent
 * corruption of a file whose identity did not change is left to the scrub.
 *
 * The identity is taken before the bytes are hashed: device, inode, size,
 * mtime and ctime in nanoseconds. Writing to the file, replacing it or
 * touching its times changes the ctime, which no process can set back, so a
 * file changed after its verification is verified again on its next read.
 */
import type { BigIntStats } from 'node:fs'

/**
 * Files remembered at most (about 200 bytes each); the least recently read
 * are forgotten first and hashed again on their next read.
 */
export const MAX_VERIFIED_FILES = 100_000

/** Device, inode, size, mtime and ctime of an open file. */
export function contentIdentity(
  stat: Pick<BigIntStats, 'dev' | 'ino' | 'size' | 'mtimeNs' | 'ctimeNs'>,
): string {
  return [stat.dev, stat.ino, stat.size, stat.mtimeNs, stat.ctimeNs].map(String).join(':')
}

export class VerifiedFiles {
  readonly #identities = new Map<string, string>()

  constructor(private readonly max = MAX_VERIFIED_FILES) {}

  /** Whether `digest`'s file was verified with this identity (and marks it recently read). */
  matches(digest: string, identity: string): boolean {
    if (this.#identities.get(digest) !== identity) return false
    this.#identities.delete(digest)
    this.#identities.set(digest, identity)
    return true
  }

  /** Records that the file with `identity` hashed to `digest`. */
  record(digest: string, identity: string): void {
    this.#identities.delete(digest)
    this.#identities.set(digest, identity)
    if (this.#identities.size > this.max) {
      const oldest = this.#identities.keys().next().value
      if (oldest !== undefined) this.#identities.delete(oldest)
    }
  }

  forget(digest: string): void {
    this.#identities.delete(digest)
  }

  get size(): number {
    return this.#identities.size
  }
}
