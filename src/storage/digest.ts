import { createHash, type Hash } from 'node:crypto'
import { InvalidDigestError } from './errors.ts'

/** A validated `sha256:<64 lowercase hex>` digest; the only form that may become a path. */
export type Digest = string & { readonly __brand: 'Digest' }

const DIGEST_RE = /^sha256:[a-f0-9]{64}$/

/** True when `value` is a canonical sha256 digest. */
export function isDigest(value: string): value is Digest {
  return DIGEST_RE.test(value)
}

/** Validates a digest string; throws InvalidDigestError for anything else (other algorithms included). */
export function parseDigest(value: string): Digest {
  if (!isDigest(value)) throw new InvalidDigestError(value)
  return value
}

/** The 64 hex characters after `sha256:`. */
export function digestHex(digest: Digest): string {
  return digest.slice('sha256:'.length)
}

/** A fresh incremental SHA-256 hasher. */
export function createSha256(): Hash {
  return createHash('sha256')
}

/** Formats a finished hasher as a digest. */
export function hashToDigest(hash: Hash): Digest {
  return `sha256:${hash.digest('hex')}` as Digest
}

/** Digest of an in-memory buffer (manifests, small documents, tests). */
export function digestOf(data: Uint8Array | string): Digest {
  return hashToDigest(createSha256().update(data))
}
