/**
 * A sentinel that answers on cue, for fault injection only: it names a
 * primary (a real redis-server), can hold its answer until the test lets it
 * go, and publishes `+switch-master` to its subscribers when told. Real
 * sentinels (helpers/redis-sentinel.ts) cannot be timed that closely.
 * It speaks just enough RESP for ioredis: requests are arrays of bulk
 * strings; anything it does not know is answered `+OK`.
 */
import { createServer, type Socket } from 'node:net'
import type { Test } from 'tap'
import { listenOnLoopback } from './listen.ts'

export interface FakeSentinel {
  readonly address: string
  /** Where `get-master-addr-by-name` points. */
  primaryPort: number
  /** Answers to `get-master-addr-by-name` wait until `release()`; resolves once one is waiting. */
  hold(): Promise<void>
  release(): void
  /** Sends `+switch-master` to every subscriber. */
  announceSwitch(): void
  /** Connections accepted so far. */
  connections(): number
}

export async function startFakeSentinel(
  t: Test,
  masterName: string,
  primaryPort: number,
): Promise<FakeSentinel> {
  const subscribers = new Set<Socket>()
  let holding = false
  let held: (() => void)[] = []
  let onHeld: (() => void) | undefined
  let accepted = 0

  const server = createServer((socket) => {
    accepted++
    socket.on('close', () => subscribers.delete(socket))
    socket.on('error', () => undefined)
    let pending = Buffer.alloc(0)
    socket.on('data', (data: Buffer) => {
      pending = Buffer.concat([pending, data])
      for (;;) {
        const parsed = parseCommand(pending)
        if (!parsed) return
        pending = pending.subarray(parsed.length)
        answer(socket, parsed.args)
      }
    })
  })

  const answer = (socket: Socket, args: string[]) => {
    const [command = '', sub = ''] = args.map((arg) => arg.toLowerCase())
    if (command === 'sentinel' && sub === 'get-master-addr-by-name') {
      const reply = () => socket.write(array([bulk('127.0.0.1'), bulk(String(fake.primaryPort))]))
      if (!holding) return void reply()
      held.push(reply)
      onHeld?.()
      return
    }
    if (command === 'sentinel') return void socket.write(array([]))
    if (command === 'subscribe') {
      subscribers.add(socket)
      return void socket.write(array([bulk('subscribe'), bulk(args[1] ?? ''), ':1\r\n']))
    }
    socket.write('+OK\r\n')
  }

  const port = await listenOnLoopback(t, server)

  const fake: FakeSentinel = {
    address: `127.0.0.1:${port}`,
    primaryPort,
    hold: () => {
      holding = true
      return new Promise<void>((resolve) => {
        onHeld = () => {
          onHeld = undefined
          resolve()
        }
      })
    },
    release: () => {
      holding = false
      const replies = held
      held = []
      for (const reply of replies) reply()
    },
    announceSwitch: () => {
      const payload = `${masterName} 127.0.0.1 0 127.0.0.1 ${fake.primaryPort}`
      for (const socket of subscribers) {
        socket.write(array([bulk('message'), bulk('+switch-master'), bulk(payload)]))
      }
    },
    connections: () => accepted,
  }
  return fake
}

const bulk = (value: string) => `$${Buffer.byteLength(value)}\r\n${value}\r\n`
const array = (items: string[]) => `*${items.length}\r\n${items.join('')}`

/** One complete `*N` array of `$len` bulk strings at the start of `buffer`, or undefined if more is to come. */
function parseCommand(buffer: Buffer): { args: string[]; length: number } | undefined {
  let offset = 0
  const line = () => {
    const end = buffer.indexOf('\r\n', offset)
    if (end < 0) return undefined
    const text = buffer.toString('latin1', offset, end)
    offset = end + 2
    return text
  }
  const head = line()
  if (head === undefined) return undefined
  if (!head.startsWith('*'))
    throw new Error(`fake sentinel: inline commands are not supported: ${head}`)
  const args: string[] = []
  for (let i = 0; i < Number(head.slice(1)); i++) {
    const size = line()
    if (size === undefined) return undefined
    const length = Number(size.slice(1))
    if (buffer.length < offset + length + 2) return undefined
    args.push(buffer.toString('utf8', offset, offset + length))
    offset += length + 2
  }
  return { args, length: offset }
}
