import type { Readable } from 'node:stream'
import type { Pacer } from './ports.ts'

/**
 * Reads a fill to its end, which is what stores and verifies it; resolves
 * with its bytes. Paced per chunk, though the fill itself may run ahead.
 */
export async function drain(stream: Readable, paced: Pacer): Promise<number> {
  let bytes = 0
  for await (const chunk of stream) {
    const length = (chunk as Buffer).length
    bytes += length
    await paced(length)
  }
  return bytes
}
