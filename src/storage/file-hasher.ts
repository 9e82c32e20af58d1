/**
 * A small pool of worker threads that hash stored files. Concurrent requests
 * for the same file share one job (many clients pulling one popular layer cost
 * one hash), and jobs are spread over the workers. Each result names the
 * content it hashed (device, inode, size, mtime, ctime at the worker's open), so
 * a caller can tell a job that began before the file last changed.
 */
import { availableParallelism } from 'node:os'
import { Worker } from 'node:worker_threads'

/** Read size inside the worker; large reads from the page cache are cheapest. */
const WORKER_CHUNK_BYTES = 4 * 1024 * 1024

/**
 * The worker body, run with `eval`: plain CommonJS needs no TypeScript loader
 * (workers do not inherit loader hooks) and no separate file to ship.
 * Messages: { id, path } -> { id, digest, size, identity } | { id, error }.
 */
const WORKER_SOURCE = `
const { createHash } = require('node:crypto')
const { closeSync, fstatSync, openSync, readSync } = require('node:fs')
const { parentPort } = require('node:worker_threads')
const buffer = Buffer.allocUnsafe(${WORKER_CHUNK_BYTES})
parentPort.on('message', (job) => {
  let fd
  try {
    fd = openSync(job.path, 'r')
    const stat = fstatSync(fd, { bigint: true })
    const hash = createHash('sha256')
    let size = 0
    for (;;) {
      const read = readSync(fd, buffer, 0, buffer.length, size)
      if (read === 0) break
      hash.update(buffer.subarray(0, read))
      size += read
    }
    parentPort.postMessage({
      id: job.id,
      digest: 'sha256:' + hash.digest('hex'),
      size,
      identity: [stat.dev, stat.ino, stat.size, stat.mtimeNs, stat.ctimeNs].join(':'),
    })
  } catch (error) {
    parentPort.postMessage({ id: job.id, error: String(error && error.message) })
  } finally {
    if (fd !== undefined) closeSync(fd)
  }
})
`

export interface FileHash {
  readonly digest: string
  readonly size: number
  /** What was hashed, in the form of contentIdentity (verified-files.ts): compare it with the reader's file. */
  readonly identity: string
}

interface Pending {
  readonly resolve: (result: FileHash) => void
  readonly reject: (error: Error) => void
}

export class FileHasher {
  readonly #workers: (Worker | undefined)[] = []
  readonly #pending = new Map<number, Pending>()
  readonly #inFlight = new Map<string, Promise<FileHash>>()
  readonly #threads: number
  #nextId = 0
  #closed = false

  /** `threads` defaults to one less than the cores (at least one). */
  constructor(threads = Math.max(1, availableParallelism() - 1)) {
    this.#threads = threads
  }

  /**
   * SHA-256 of the file at `path`, computed off the main thread. A job already
   * running for the path is shared unless `join` is false; a new job is the one
   * later callers share.
   */
  async hash(path: string, { join = true }: { join?: boolean } = {}): Promise<FileHash> {
    const running = this.#inFlight.get(path)
    if (running && join) return running
    const job = this.#run(path).finally(() => {
      if (this.#inFlight.get(path) === job) this.#inFlight.delete(path)
    })
    this.#inFlight.set(path, job)
    return job
  }

  /**
   * Starts the worker threads now rather than on the first verified read,
   * which would otherwise wait tens of milliseconds for a thread to boot.
   */
  warmUp(): void {
    for (let i = 0; i < this.#threads; i++) this.#worker(i)
  }

  async close(): Promise<void> {
    this.#closed = true
    const workers = this.#workers.filter((worker): worker is Worker => worker !== undefined)
    await Promise.all(workers.map((worker) => worker.terminate()))
    this.#workers.length = 0
  }

  async #run(path: string): Promise<FileHash> {
    if (this.#closed) throw new Error('file hasher is closed')
    const id = this.#nextId++
    const worker = this.#worker(id)
    return new Promise<FileHash>((resolve, reject) => {
      this.#pending.set(id, { resolve, reject })
      worker.postMessage({ id, path })
    })
  }

  #worker(id: number): Worker {
    const index = id % this.#threads
    const existing = this.#workers[index]
    if (existing) return existing
    const worker = new Worker(WORKER_SOURCE, { eval: true })
    // Idle workers must not keep the process alive.
    worker.unref()
    worker.on(
      'message',
      (message: {
        id: number
        digest?: string
        size?: number
        identity?: string
        error?: string
      }) => {
        const pending = this.#pending.get(message.id)
        if (!pending) return
        this.#pending.delete(message.id)
        if (message.digest !== undefined)
          pending.resolve({
            digest: message.digest,
            size: message.size ?? 0,
            identity: message.identity ?? '',
          })
        else pending.reject(new Error(message.error ?? 'hash worker failed'))
      },
    )
    worker.on('error', (error: Error) => {
      // A crashed worker fails its jobs; the next job gets a new worker.
      for (const [pendingId, pending] of this.#pending) {
        if (pendingId % this.#threads === index) {
          this.#pending.delete(pendingId)
          pending.reject(error)
        }
      }
      this.#workers[index] = undefined
    })
    this.#workers[index] = worker
    return worker
  }
}
