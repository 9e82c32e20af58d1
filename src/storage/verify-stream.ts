/**
 * A pass-through that hashes what flows through it and only releases the final
 * chunk once the whole content matched the expected digest. On a mismatch it
 * errors instead, so a reader never receives a complete body that is wrong:
 * an HTTP client sees a truncated response, not a corrupt one.
 */
import { Transform, type TransformCallback } from 'node:stream'
import { createSha256, hashToDigest, type Digest } from './digest.ts'
import { DigestMismatchError } from './errors.ts'

export function createVerifyStream(expected: Digest): Transform {
  const hash = createSha256()
  let held: Buffer | undefined
  let size = 0
  return new Transform({
    transform(chunk: Buffer, _encoding, callback: TransformCallback) {
      hash.update(chunk)
      size += chunk.length
      const previous = held
      held = chunk
      callback(null, previous)
    },
    flush(callback: TransformCallback) {
      const actual = hashToDigest(hash)
      if (actual !== expected) {
        callback(new DigestMismatchError(expected, actual, size))
        return
      }
      callback(null, held)
    },
  })
}

/**
 * Like createVerifyStream, but the hash is computed elsewhere (a worker thread
 * reading the same immutable file): bytes pass straight through and the last
 * chunk waits for `check`, which rejects on a mismatch.
 */
export function createDeferredVerifyStream(check: Promise<void>): Transform {
  let held: Buffer | undefined
  // Observed in flush; a rejection before then must not count as unhandled.
  check.catch(() => undefined)
  return new Transform({
    transform(chunk: Buffer, _encoding, callback: TransformCallback) {
      const previous = held
      held = chunk
      callback(null, previous)
    },
    flush(callback: TransformCallback) {
      check.then(
        () => callback(null, held),
        (error: unknown) => callback(error as Error),
      )
    },
  })
}
