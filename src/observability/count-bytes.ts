/**
 * Counts the bytes of a stream as they pass on, so what is reported is what
 * went out: a reader that leaves mid-body is counted up to where it left.
 */
import { Transform, type Readable } from 'node:stream'
import { pipeInto } from '../pipe-into.ts'

export interface CountedStream {
  readonly stream: Readable
  /** Bytes passed on so far. */
  readonly bytes: () => number
}

/**
 * `source` through a counter; an error of `source` destroys the returned stream
 * with it, and destroying the returned stream (a client gone) destroys `source`.
 */
export function countBytes(source: Readable): CountedStream {
  let bytes = 0
  const counter = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      bytes += chunk.length
      callback(null, chunk)
    },
  })
  pipeInto(source, counter)
  return { stream: counter, bytes: () => bytes }
}
