/** Ports on 127.0.0.1 for servers the tests and benchmarks start themselves. */
import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import { createServer } from 'node:net'

/** Lowest port handed out: clear of the well-known and registered ports services tend to use. */
const LOWEST_PORT = 10_000
const ATTEMPTS = 100

/**
 * Where the kernel's ephemeral range starts. A port from `listen(0)` comes from
 * that range, and so does the local port of every outgoing connection: between
 * releasing such a port and a child process binding it, any client socket on
 * the machine (the tests run in parallel) can take it (EADDRINUSE). Ports
 * below the range are only ever taken by a listener asking for them by number.
 */
function ephemeralStart(): number {
  try {
    const low = Number(
      readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').split(/\s+/)[0],
    )
    return low > LOWEST_PORT + 1000 ? low : 32_768
  } catch {
    return 32_768
  }
}

const HIGHEST_PORT = ephemeralStart() - 1
/** Each process walks the range from its own random start, so parallel test files rarely meet. */
let next = LOWEST_PORT + Math.floor(Math.random() * (HIGHEST_PORT - LOWEST_PORT))

/**
 * A port that was free a moment ago: bound, checked and released. It lies
 * below the ephemeral range, so no outgoing connection can take it before the
 * server it is meant for binds it. Also what a test uses as a port where
 * nothing listens (connection refused).
 */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
    const port = next
    next = next >= HIGHEST_PORT ? LOWEST_PORT : next + 1
    if (await bindable(port)) return port
  }
  throw new Error(`no free port in ${LOWEST_PORT}-${HIGHEST_PORT} after ${ATTEMPTS} attempts`)
}

async function bindable(port: number): Promise<boolean> {
  const server = createServer()
  try {
    server.listen(port, '127.0.0.1')
    await once(server, 'listening')
  } catch {
    return false
  }
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return true
}
