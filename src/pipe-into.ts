/**
 * Streams `source` into `sink` as stream.pipeline would for a chain of two
 * that ends in a stream someone else consumes: `source` failing or closing
 * before its end destroys `sink` with that error (a reader sees a cut body,
 * never a short one that looks whole), and `sink` closing (its end, its
 * error, or its consumer destroying it: a client gone) destroys `source`,
 * which releases what it holds (a file). Without pipeline's per-call
 * AbortController, aborted when done, which builds a DOMException with a
 * stack trace: on every warm GET that cost a fifth of the main thread's time
 * for a 16 KiB file (bench/RESULTS.md, 2026-12-04 "night").
 */
import { finished, type Readable, type Writable } from 'node:stream'

export function pipeInto<T extends Writable>(source: Readable, sink: T): T {
  finished(source, (error) => {
    if (error) sink.destroy(error)
  })
  sink.once('close', () => source.destroy())
  return source.pipe(sink)
}
