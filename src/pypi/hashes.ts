/**
 * File and metadata hashes as the simple API writes them: hashlib names with
 * hex digests, as a JSON object (PEP 691) or one `name=hex` pair in a URL
 * fragment or `data-core-metadata` (PEP 503, PEP 658).
 */

/** Hex digest lengths of hashlib's fixed-size algorithms; other names are checked for shape only. */
const HEX_LENGTH: Readonly<Record<string, number>> = {
  md5: 32,
  sha1: 40,
  sha224: 56,
  sha256: 64,
  sha384: 96,
  sha512: 128,
  sha3_224: 56,
  sha3_256: 64,
  sha3_384: 96,
  sha3_512: 128,
  blake2b: 128,
  blake2s: 64,
}

/** The one hash an HTML link carries: the first of these the file has (pip reads these names). */
const FRAGMENT_PREFERENCE = ['sha256', 'sha512', 'sha384', 'sha224', 'sha1', 'md5'] as const

const HASH_NAME_RE = /^[a-z0-9_]{1,32}$/
const MAX_HEX_LENGTH = 256

export type Hashes = Readonly<Record<string, string>>

/** True for a hashlib algorithm name this module knows the digest length of. */
export function isKnownHashName(name: string): boolean {
  return Object.hasOwn(HEX_LENGTH, name.toLowerCase())
}

/** The lowercase `[name, hex]` of a well-formed hash, or undefined. */
export function normalizeHash(name: string, digest: string): [string, string] | undefined {
  const algo = name.toLowerCase()
  const hex = digest.toLowerCase()
  if (!HASH_NAME_RE.test(algo) || !/^[0-9a-f]+$/.test(hex) || hex.length > MAX_HEX_LENGTH) {
    return undefined
  }
  const expected = HEX_LENGTH[algo]
  const lengthOk = expected === undefined ? hex.length % 2 === 0 : hex.length === expected
  return lengthOk ? [algo, hex] : undefined
}

/**
 * A JSON `hashes` object in normal form (keys sorted, lowercase), or
 * undefined when any entry is malformed: a page that garbles one digest is
 * not trusted for the others.
 */
export function normalizeHashes(value: Readonly<Record<string, unknown>>): Hashes | undefined {
  const pairs: [string, string][] = []
  for (const [name, digest] of Object.entries(value)) {
    const pair = typeof digest === 'string' ? normalizeHash(name, digest) : undefined
    if (pair === undefined) return undefined
    pairs.push(pair)
  }
  return sortedHashes(pairs)
}

/** Builds a hashes record with its keys in sorted order, so that renderings are stable. */
export function sortedHashes(pairs: readonly (readonly [string, string])[]): Hashes {
  const sorted = [...pairs].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
  return Object.fromEntries(sorted)
}

/** Parses one `name=hex` pair (`sha256=…`), or undefined. */
export function parseHashPair(text: string): [string, string] | undefined {
  const at = text.indexOf('=')
  if (at <= 0) return undefined
  return normalizeHash(text.slice(0, at), text.slice(at + 1))
}

/** The `name=hex` pair an HTML link or `data-core-metadata` carries for these hashes, if any. */
export function formatHashPair(hashes: Hashes): string | undefined {
  const name = FRAGMENT_PREFERENCE.find((algo) => Object.hasOwn(hashes, algo))
  return name === undefined ? undefined : `${name}=${hashes[name] ?? ''}`
}
