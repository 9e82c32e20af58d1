/**
 * Small upstream documents (manifests, tag lists, referrers indexes, index
 * pages): fetched whole into memory under a size bound, never streamed to disk
 * first. Anything larger than the bound is refused before or while it is read.
 */
import type { IncomingHttpHeaders } from 'node:http'
import { DocumentTooLargeError } from './errors.ts'
import type { Mirror } from './mirror.ts'
import type { UpstreamSource } from './source.ts'

export interface DocumentSource extends UpstreamSource {
  /** Content addressed by digest: a 404 on one mirror is asked of the next. */
  readonly tryNextOnNotFound?: boolean
}

export interface FetchedDocument {
  readonly status: number
  readonly headers: IncomingHttpHeaders
  readonly body: Buffer
  readonly mirror: Mirror
  /** The final URL, after redirects (never with credentials). */
  readonly url: string
}

export interface FetchOptions {
  readonly method?: 'GET' | 'HEAD'
  /** The statuses the caller can use; the pool raises typed errors for the rest. */
  readonly expect: readonly number[]
  readonly maxBytes: number
  /** Mirrors not to ask (one that just sent bytes that failed verification). */
  readonly exclude?: ReadonlySet<Mirror>
  /** Mirror to ask first (the one whose ETag is being revalidated). */
  readonly prefer?: Mirror
  readonly signal?: AbortSignal
}

/** One upstream request, its body read whole; DocumentTooLargeError past `maxBytes`. */
export async function fetchDocument(
  source: DocumentSource,
  options: FetchOptions,
): Promise<FetchedDocument> {
  const res = await source.pool.request({
    path: source.path,
    method: options.method ?? 'GET',
    kind: 'document',
    expect: options.expect,
    authScope: source.authScope,
    headers: source.headers,
    tryNextOnNotFound: source.tryNextOnNotFound,
    exclude: options.exclude,
    prefer: options.prefer,
    signal: options.signal,
  })
  const declared = Number(res.headers['content-length'])
  if (Number.isFinite(declared) && declared > options.maxBytes && options.method !== 'HEAD') {
    res.body.destroy()
    throw new DocumentTooLargeError(source.pool.name, declared, options.maxBytes)
  }
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of res.body as AsyncIterable<Buffer>) {
    size += chunk.length
    if (size > options.maxBytes) {
      res.body.destroy()
      throw new DocumentTooLargeError(source.pool.name, size, options.maxBytes)
    }
    chunks.push(chunk)
  }
  return {
    status: res.status,
    headers: res.headers,
    body: Buffer.concat(chunks),
    mirror: res.mirror,
    url: res.url,
  }
}

/** A single header value (undici gives arrays for repeated headers). */
export function headerValue(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name]
  return Array.isArray(value) ? value[0] : value
}
