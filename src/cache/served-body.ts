/**
 * The body of a served blob: a Buffer when the store read a small blob whole
 * (verified already), else a stream. HTTP routes send either as it is; the
 * consumers that pipe (bundles, syncs, peers) take it as a stream.
 */
import { Readable } from 'node:stream'

export type ServedBody = Buffer | Readable

/** `body` as a stream of its bytes. */
export function bodyStream(body: ServedBody): Readable {
  return body instanceof Readable ? body : Readable.from([body], { objectMode: false })
}

/** Lets go of a body that will not be sent: a stream holds a file or a fill's reader. */
export function discardBody(body: ServedBody): void {
  if (body instanceof Readable) body.destroy()
}
