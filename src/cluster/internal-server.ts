/**
 * The internal endpoint other replicas stream running fills from, on its own
 * port (cluster.port), so it can be kept off the client network. Only
 * requests carrying the shared secret are answered; it never asks an
 * upstream: a blob that is neither stored nor being fetched here is a 404.
 */
import { createHash, timingSafeEqual } from 'node:crypto'
import { once } from 'node:events'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { pipeline } from 'node:stream/promises'
import type { ReadThrough } from '../cache/read-through.ts'
import type { Logger } from '../observability/logger.ts'
import { isDigest } from '../storage/digest.ts'
import { INTERNAL_BLOBS_PATH } from './peer-sources.ts'
import { discardBody } from '../cache/served-body.ts'

/** Replica connections at most: a few per replica and blob being filled. */
const MAX_CONNECTIONS = 256
/** A request's headers must arrive within this. */
const HEADERS_TIMEOUT_MS = 10_000

const RANGE_RE = /^bytes=(\d+)-$/

export interface InternalServerOptions {
  readonly host: string
  readonly port: number
  readonly secret: string
  readonly cache: Pick<ReadThrough, 'servePeer'>
  readonly logger: Logger
}

export interface InternalServer {
  close(): Promise<void>
}

export async function startInternalServer(options: InternalServerOptions): Promise<InternalServer> {
  const logger = options.logger.child({ component: 'internal' })
  const expected = sha256(`Bearer ${options.secret}`)
  const server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      logger.warn({ err: error, url: req.url }, 'internal request failed')
      if (!res.headersSent) res.writeHead(500).end()
      else res.destroy()
    })
  })
  server.maxConnections = MAX_CONNECTIONS
  server.headersTimeout = HEADERS_TIMEOUT_MS

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    // Compared as hashes: equal lengths, and no timing tells how much of a guess was right.
    if (!timingSafeEqual(sha256(req.headers.authorization ?? ''), expected)) {
      res.writeHead(401).end()
      return
    }
    const path = req.url ?? ''
    const digest = path.startsWith(INTERNAL_BLOBS_PATH)
      ? path.slice(INTERNAL_BLOBS_PATH.length)
      : ''
    if (req.method !== 'GET' || !isDigest(digest)) {
      res.writeHead(404).end()
      return
    }
    const range = req.headers.range
    const start = range === undefined ? 0 : Number(RANGE_RE.exec(range)?.[1] ?? Number.NaN)
    if (!Number.isSafeInteger(start)) {
      res.writeHead(416).end()
      return
    }
    const served = await options.cache.servePeer(digest, start).catch(() => undefined)
    if (!served || served.size === undefined) {
      if (served) discardBody(served.body)
      res.writeHead(404).end()
      return
    }
    const { size, body } = served
    res.writeHead(start > 0 ? 206 : 200, {
      'content-type': 'application/octet-stream',
      'content-length': String(size - start),
      ...(start > 0 ? { 'content-range': `bytes ${start}-${size - 1}/${size}` } : {}),
    })
    // A failed fill or a stop cuts the response; the replica reading it resumes elsewhere.
    if (Buffer.isBuffer(body)) res.end(body)
    else await pipeline(body, res).catch(() => res.destroy())
  }

  server.listen(options.port, options.host)
  await once(server, 'listening')
  return {
    async close() {
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}

function sha256(value: string): Buffer {
  return createHash('sha256').update(value).digest()
}
