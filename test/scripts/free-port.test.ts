/**
 * The ports tests give to the servers they spawn (redis-server, the registry,
 * pullthrough itself) lie below the kernel's ephemeral range: the local port
 * of an outgoing connection from any parallel test can never take one of them
 * between the check and the child's bind (a CI run once failed on that with
 * EADDRINUSE).
 */
import { readFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import t from 'tap'
import { freePort } from '../helpers/free-port.ts'

t.test('free ports lie below the ephemeral range and can be bound', async (t) => {
  const range = await readFile('/proc/sys/net/ipv4/ip_local_port_range', 'utf8')
  const ephemeralLow = Number(range.split(/\s+/)[0])
  const ports = new Set<number>()
  for (let i = 0; i < 20; i++) {
    const port = await freePort()
    t.ok(port < ephemeralLow, `${port} is below ${ephemeralLow}`)
    ports.add(port)
  }
  t.equal(ports.size, 20, 'no port handed out twice')
  const port = await freePort()
  const server = createServer().listen(port, '127.0.0.1')
  t.teardown(() => void server.close())
  await new Promise((resolve, reject) => server.once('listening', resolve).once('error', reject))
  t.pass('bound')
})

t.test('a port something listens on is skipped', async (t) => {
  const first = await freePort()
  const held = createServer().listen(first + 1, '127.0.0.1')
  t.teardown(() => void held.close())
  await new Promise((resolve, reject) => held.once('listening', resolve).once('error', reject))
  const second = await freePort()
  t.not(second, first + 1, 'the taken port is not handed out')
})
