/**
 * Tells `done` of each chunk of a response body once its write has completed:
 * the socket no longer holds its bytes, so the buffer may be used again
 * (storage/read-buffers.ts). A write that fails reports nothing: its buffer
 * is left to the garbage collector.
 */
import type { ServerResponse } from 'node:http'

type WriteCallback = (error?: Error | null) => void

export function onChunkWritten(res: ServerResponse, done: (chunk: unknown) => void): void {
  const write = res.write.bind(res) as (chunk: unknown, ...rest: unknown[]) => boolean
  // The body is piped into `res.write`; this wraps it for this response only.
  res.write = ((chunk: unknown, ...rest: unknown[]) => {
    const last = rest.at(-1)
    const callback = typeof last === 'function' ? (last as WriteCallback) : undefined
    const args = callback ? rest.slice(0, -1) : rest
    return write(chunk, ...args, (error?: Error | null) => {
      if (error == null) done(chunk)
      callback?.(error)
    })
  }) as ServerResponse['write']
}
