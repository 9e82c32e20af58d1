/** Reading test streams: whole bodies, their digests, and bodies that get cut. */
import { createHash, randomBytes } from 'node:crypto'
import type { Readable } from 'node:stream'

/** Incompressible test content of `size` bytes and its digest. */
export function randomBlob(size: number): { data: Buffer; digest: string } {
  const data = randomBytes(size)
  return { data, digest: `sha256:${createHash('sha256').update(data).digest('hex')}` }
}

export interface Drained {
  readonly bytes: number
  readonly digest: string
  readonly error: Error | undefined
}

/** Reads a stream (or a served body read whole) to its end or error, without keeping it in memory. */
export async function drain(stream: Readable | Buffer): Promise<Drained> {
  const hash = createHash('sha256')
  let bytes = 0
  try {
    for await (const chunk of Buffer.isBuffer(stream) ? [stream] : stream) {
      hash.update(chunk as Buffer)
      bytes += (chunk as Buffer).length
    }
    return { bytes, digest: `sha256:${hash.digest('hex')}`, error: undefined }
  } catch (error) {
    return { bytes, digest: '', error: error as Error }
  }
}

/** Reads a small stream whole (for range responses and other short bodies); a Buffer is that already. */
export async function readAll(stream: Readable | Buffer): Promise<Buffer> {
  if (Buffer.isBuffer(stream)) return stream
  const chunks: Buffer[] = []
  for await (const chunk of stream) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks)
}
