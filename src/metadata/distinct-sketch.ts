/**
 * A bounded estimate of how many distinct strings were seen (a K-minimum-values
 * sketch), the embedded store's stand-in for Redis's HyperLogLog: it keeps the
 * SKETCH_SIZE smallest 32-bit hashes. Exact up to SKETCH_SIZE distinct values,
 * within about 1/sqrt(SKETCH_SIZE - 2) (6%) past it; never more than
 * SKETCH_SIZE numbers, whatever it saw. Sketches of different buckets merge into
 * the sketch of their union, so distinct clients over a week come from hourly ones.
 */

/** Hashes kept per sketch. */
export const SKETCH_SIZE = 256
const HASH_RANGE = 2 ** 32

/** 32-bit FNV-1a with a final avalanche (murmur3's fmix32), as an unsigned number. */
export function hash32(text: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  h ^= h >>> 16
  return h >>> 0
}

/** The sketch: sorted ascending, no duplicates, at most SKETCH_SIZE hashes. */
export type Sketch = number[]

/** Adds the hashes of `values` to `sketch` (in place); returns it. */
export function addToSketch(sketch: Sketch, values: Iterable<string>): Sketch {
  for (const value of values) insert(sketch, hash32(value))
  return sketch
}

/** The sketch of the union of `sketches`. */
export function mergeSketches(sketches: Iterable<readonly number[]>): Sketch {
  const merged: Sketch = []
  for (const sketch of sketches) for (const h of sketch) insert(merged, h)
  return merged
}

export function estimateDistinct(sketch: readonly number[]): number {
  if (sketch.length < SKETCH_SIZE) return sketch.length
  const kth = sketch[SKETCH_SIZE - 1] ?? HASH_RANGE
  return Math.round(((SKETCH_SIZE - 1) * HASH_RANGE) / (kth + 1))
}

function insert(sketch: Sketch, h: number): void {
  const full = sketch.length >= SKETCH_SIZE
  if (full && h >= (sketch[sketch.length - 1] ?? 0)) return
  let lo = 0
  let hi = sketch.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if ((sketch[mid] ?? 0) < h) lo = mid + 1
    else hi = mid
  }
  if (sketch[lo] === h) return
  sketch.splice(lo, 0, h)
  if (sketch.length > SKETCH_SIZE) sketch.pop()
}
