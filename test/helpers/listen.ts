/** Servers tests start in-process: on a free loopback port, closed with their connections at test end. */
import { once } from 'node:events'
import type { Server, Socket } from 'node:net'
import type { Test } from 'tap'

/** Listens on 127.0.0.1:0 and resolves with the port; at test end, cuts every connection and closes. */
export async function listenOnLoopback(t: Test, server: Server): Promise<number> {
  const sockets = new Set<Socket>()
  server.on('connection', (socket: Socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(async () => {
    for (const socket of sockets) socket.destroy()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  })
  return (server.address() as { port: number }).port
}
