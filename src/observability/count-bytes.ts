/**
 * Counts the bytes of a stream as they pass on, so what is reported is what
 * went out: a reader that leaves mid-body is counted up to where it left.
 */
import { Transform, pipeline, type Readable } from 'node:stream'

export interface CountedStream {
  readonly stream: Readable
  /** Bytes passed on so far. */
  readonly bytes: () => number
}

/** `source` through a counter; an error of `source` destroys the returned stream with it. */
export function countBytes(source: Readable): CountedStream {
  let bytes = 0
  const counter = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      bytes += chunk.length
      callback(null, chunk)
    },
  })
  pipeline(source, counter, () => undefined)
  return { stream: counter, bytes: () => bytes }
}
