/** Ports on 127.0.0.1 for servers the tests and benchmarks start themselves. */
import { once } from 'node:events'
import { createServer } from 'node:net'

/**
 * A port that was free a moment ago: bound, read and released. Another
 * process could take it in between; on a test machine nothing else does.
 * Also what a test uses as a port where nothing listens (connection refused).
 */
export async function freePort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as { port: number }
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return port
}
