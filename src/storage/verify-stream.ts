/**
 * A pass-through that hashes what flows through it and only releases the final
 * chunk once the whole content matched the expected digest. On a mismatch it
 * errors instead, so a reader never receives a complete body that is wrong:
 * an HTTP client sees a truncated response, not a corrupt one.
 */
import { Transform, type TransformCallback } from 'node:stream'
import { createSha256, hashToDigest, type Digest } from './digest.ts'
import { DigestMismatchError } from './errors.ts'

/** Passes bytes through, holding back the latest chunk until the hash of everything matched `expected`. */
export function createVerifyStream(expected: Digest): Transform {
  const hash = createSha256()
  let size = 0
  let held: Buffer | undefined
  return new Transform({
    transform(chunk: Buffer, _encoding, callback: TransformCallback) {
      // An empty chunk must not take the held chunk's place: holding back nothing
      // would release every byte before the verdict.
      if (chunk.length === 0) {
        callback()
        return
      }
      hash.update(chunk)
      size += chunk.length
      const previous = held
      held = chunk
      callback(null, previous)
    },
    flush(callback: TransformCallback) {
      const actual = hashToDigest(hash)
      if (actual === expected) callback(null, held)
      else callback(new DigestMismatchError(expected, actual, size))
    },
  })
}

/** SHA-256 and length of everything `source` yields (checking stored blobs, tests). */
export async function hashStream(
  source: AsyncIterable<Uint8Array>,
): Promise<{ digest: Digest; size: number }> {
  const hash = createSha256()
  let size = 0
  for await (const chunk of source) {
    hash.update(chunk)
    size += chunk.length
  }
  return { digest: hashToDigest(hash), size }
}
