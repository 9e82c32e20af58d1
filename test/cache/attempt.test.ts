import * as realFs from 'node:fs/promises'
import type { FileHandle } from 'node:fs/promises'
import t, { type Test } from 'tap'
import { ChunkWindow } from '../../src/cache/chunk-window.ts'
import {
  DiskAttempt,
  MAX_UNWRITTEN_BYTES,
  RECENT_WINDOW_BYTES,
  WRITE_BATCH_BYTES,
} from '../../src/cache/attempt.ts'
import { BlobStore, type BlobStoreFs } from '../../src/storage/blob-store.ts'
import { READ_HIGH_WATER_MARK, ReadBuffers } from '../../src/storage/read-buffers.ts'
import { tempDir } from '../helpers/config.ts'
import { randomBlob } from '../helpers/streams.ts'

const KiB = 1024
const MiB = 1024 * KiB

/** A disk whose temp-file writes are counted and can be held until `release()`. */
interface SlowDisk {
  readonly fs: BlobStoreFs
  /** Bytes of each write (writev) to a temp file, in order. */
  readonly writes: number[]
  hold(): void
  release(): void
}

function slowDisk(): SlowDisk {
  const writes: number[] = []
  let gate: Promise<void> | undefined
  let open: (() => void) | undefined
  const waitGate = async () => {
    while (gate) await gate
  }
  const wrapHandle = (fh: FileHandle): FileHandle =>
    new Proxy(fh, {
      get(target, prop: string) {
        const value = (target as unknown as Record<string, unknown>)[prop]
        if (typeof value !== 'function') return value
        if (prop !== 'writev') return (value as (...a: unknown[]) => unknown).bind(target)
        return async (buffers: Buffer[]) => {
          writes.push(buffers.reduce((sum, b) => sum + b.length, 0))
          await waitGate()
          return (value as (b: Buffer[]) => Promise<unknown>).call(target, buffers)
        }
      },
    })
  const fs = new Proxy(realFs, {
    get(target, prop: string) {
      const value = (target as unknown as Record<string, unknown>)[prop]
      if (prop !== 'open') return value
      return async (path: string, flags: string) =>
        path.endsWith('.part') && flags.includes('w')
          ? wrapHandle(await realFs.open(path, flags))
          : realFs.open(path, flags)
    },
  })
  return {
    fs,
    writes,
    hold() {
      gate ??= new Promise<void>((resolve) => (open = resolve))
    },
    release() {
      gate = undefined
      open?.()
    },
  }
}

async function diskAttempt(t: Test, disk: SlowDisk): Promise<DiskAttempt> {
  const blobs = await BlobStore.open(await tempDir(t), { fs: disk.fs })
  const attempt = await DiskAttempt.create(blobs, () => undefined)
  t.teardown(async () => {
    disk.release()
    await attempt.discard()
    attempt.release()
  })
  return attempt
}

function chunks(data: Buffer, size: number): Buffer[] {
  const out: Buffer[] = []
  for (let i = 0; i < data.length; i += size) out.push(data.subarray(i, i + size))
  return out
}

/** Reads [start, end) from an attempt the way a client does: as much as each read gives. */
async function readRange(attempt: DiskAttempt, start: number, end: number): Promise<Buffer> {
  const parts: Buffer[] = []
  for (let pos = start; pos < end;) {
    const part = await attempt.read(pos, end - pos)
    if (part.length === 0) throw new Error(`nothing readable at ${pos}`)
    parts.push(part)
    pos += part.length
  }
  return Buffer.concat(parts)
}

t.test('network chunks that arrive together reach the disk in few large writes', async (t) => {
  for (const count of [6, 16]) {
    const disk = slowDisk()
    const attempt = await diskAttempt(t, disk)
    const blob = randomBlob(count * 64 * KiB)
    await Promise.all(chunks(blob.data, 64 * KiB).map((c) => attempt.append(c)))
    await attempt.settle()
    const batch = Math.min(blob.data.length, WRITE_BATCH_BYTES)
    t.same(
      disk.writes,
      Array.from({ length: blob.data.length / batch }, () => batch),
      `${count} chunks of 64 KiB: writes of ${batch / KiB} KiB`,
    )
    await attempt.verify(blob.digest)
    t.equal(attempt.available, blob.data.length)
  }
})

t.test(
  'bytes are readable only once written, and a slow disk paces the transfer with bounded memory',
  async (t) => {
    const disk = slowDisk()
    const attempt = await diskAttempt(t, disk)
    const blob = randomBlob(16 * MiB)
    disk.hold()
    let accepted = 0
    let paused = false
    for (const chunk of chunks(blob.data, 64 * KiB)) {
      const appended = attempt.append(chunk).then(() => (accepted += chunk.length))
      // An append that does not resolve within a few turns is waiting for the disk.
      const settled = await Promise.race([
        appended.then(() => true),
        new Promise<false>((resolve) => setTimeout(() => resolve(false), 20)),
      ])
      if (!settled) {
        paused = true
        break
      }
    }
    t.ok(paused, 'the transfer waits for the disk')
    t.ok(
      accepted <= WRITE_BATCH_BYTES + MAX_UNWRITTEN_BYTES,
      `at most one write and MAX_UNWRITTEN_BYTES held in memory (${accepted} bytes accepted)`,
    )
    t.equal(attempt.available, 0, 'no byte is readable before it is written')
    t.equal((await attempt.read(0, MiB)).length, 0)

    // The waiting append holds its chunk already; the rest follows once the disk keeps up.
    const rest = blob.data.subarray(accepted + 64 * KiB)
    disk.release()
    for (const chunk of chunks(rest, 64 * KiB)) await attempt.append(chunk)
    await attempt.settle()
    await attempt.verify(blob.digest)
    t.equal(attempt.available, blob.data.length)
    t.ok(
      disk.writes.every((bytes) => bytes >= 64 * KiB),
      'writes are never smaller than a network chunk',
    )
  },
)

t.test('readers get the same bytes from the in-memory window and from the file', async (t) => {
  const disk = slowDisk()
  const attempt = await diskAttempt(t, disk)
  const blob = randomBlob(8 * MiB + 12345)
  for (const chunk of chunks(blob.data, 100 * KiB)) await attempt.append(chunk)
  await attempt.settle()
  const end = blob.data.length
  // The head (within RECENT_WINDOW_BYTES of the end), the file well behind it, and a span across.
  for (const [start, stop] of [
    [end - 1000, end],
    [0, MiB],
    [end - RECENT_WINDOW_BYTES - 300 * KiB, end],
    [0, end],
  ] as const) {
    const got = await readRange(attempt, start, stop)
    t.ok(got.equals(blob.data.subarray(start, stop)), `bytes ${start}-${stop}`)
  }
})

t.test('a chunk window hands out views of the chunks it holds, never copies', async (t) => {
  const window = new ChunkWindow()
  const a = Buffer.from('abcdef')
  const b = Buffer.from('ghij')
  window.push(a)
  window.push(Buffer.alloc(0))
  window.push(b)
  t.equal(window.end, 10)
  const within = window.read(1, 3)
  t.equal(within.toString(), 'bcd')
  t.equal(within.buffer, a.buffer, 'a slice of the chunk, not a copy')
  const toChunkEnd = window.read(4, 100)
  t.equal(toChunkEnd.toString(), 'ef', 'a read stops at the end of its chunk')
  t.equal(toChunkEnd.buffer, a.buffer, 'and is a view of it')
  const next = window.read(6, 100)
  t.equal(next.toString(), 'ghij', 'the next read starts in the next chunk, up to the end')
  t.equal(next.buffer, b.buffer)
  t.equal(window.read(10, 5).length, 0, 'nothing past the end')
  window.dropBefore(7)
  t.equal(window.start, 6, 'only whole chunks are dropped')
  t.equal(window.read(6, 2).toString(), 'gh')
  t.throws(() => window.read(5, 1), RangeError)
  window.clear()
  t.equal(window.start, 10)
  t.equal(window.read(10, 1).length, 0)
})

t.test(
  'a reader behind the head reads the file into buffers used again once given back',
  async (t) => {
    const readBuffers = new ReadBuffers(READ_HIGH_WATER_MARK)
    const blobs = await BlobStore.open(await tempDir(t), { readBuffers })
    const attempt = await DiskAttempt.create(blobs, () => undefined)
    t.teardown(async () => {
      await attempt.discard()
      attempt.release()
    })
    const blob = randomBlob(4 * MiB)
    for (const chunk of chunks(blob.data, 64 * KiB)) await attempt.append(chunk)
    await attempt.settle()

    const first = await attempt.read(0, READ_HIGH_WATER_MARK)
    t.ok(first.equals(blob.data.subarray(0, READ_HIGH_WATER_MARK)))
    // The response wrote it (http/written-chunks.ts gives it back then).
    readBuffers.give(first)
    t.equal(readBuffers.free, 1)
    const second = await attempt.read(READ_HIGH_WATER_MARK, READ_HIGH_WATER_MARK)
    t.equal(second.buffer, first.buffer, 'the next read reuses that buffer')
    t.ok(second.equals(blob.data.subarray(READ_HIGH_WATER_MARK, 2 * READ_HIGH_WATER_MARK)))
    t.equal(readBuffers.free, 0)

    // At the head the bytes come from memory, as views: no buffer is taken.
    readBuffers.give(second)
    const head = await attempt.read(blob.data.length - 1000, 1000)
    t.ok(head.equals(blob.data.subarray(-1000)))
    t.equal(readBuffers.free, 1)
  },
)
