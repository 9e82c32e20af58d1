/**
 * An HTTPS fake upstream for the redirect and realm policy tests (https -> http
 * downgrades): a self-signed certificate for IP 127.0.0.1 made with openssl,
 * which the test hands to the pool as its CA (TLS stays verified).
 */
import { execFile } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { createServer } from 'node:https'
import { join } from 'node:path'
import { promisify } from 'node:util'
import type { Test } from 'tap'
import { tempDir } from './config.ts'
import { notFound, type Handler, type RecordedRequest } from './fake-upstream.ts'
import { runHandler } from './fault-server.ts'
import { listenOnLoopback } from './listen.ts'

const run = promisify(execFile)

export interface TlsUpstream {
  /** `https://127.0.0.1:PORT`. */
  readonly url: string
  readonly requests: RecordedRequest[]
  /** The certificate (PEM), to trust as a CA. */
  readonly ca: Buffer
  handle(handler: Handler): void
}

/** A self-signed certificate for IP 127.0.0.1 (PEM files in a temp dir removed at test end). */
export interface SelfSignedCert {
  readonly certFile: string
  readonly keyFile: string
  readonly cert: Buffer
  readonly key: Buffer
}

/** Makes a certificate and key for 127.0.0.1 with openssl, valid for a day. */
export async function selfSignedCert(t: Test): Promise<SelfSignedCert> {
  const dir = await tempDir(t, 'pt-tls-')
  const certFile = join(dir, 'cert.pem')
  const keyFile = join(dir, 'key.pem')
  await run('openssl', [
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-days',
    '1',
    '-subj',
    '/CN=127.0.0.1',
    '-addext',
    'subjectAltName=IP:127.0.0.1',
    '-keyout',
    keyFile,
    '-out',
    certFile,
  ])
  const [cert, key] = await Promise.all([readFile(certFile), readFile(keyFile)])
  return { certFile, keyFile, cert, key }
}

/** Starts an HTTPS server on 127.0.0.1:0; closed at test end. */
export async function tlsUpstream(t: Test, handler: Handler = notFound): Promise<TlsUpstream> {
  const { cert, key } = await selfSignedCert(t)
  let current = handler
  const requests: RecordedRequest[] = []
  const server = createServer({ cert, key }, (req, res) => {
    requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers })
    runHandler(current, req, res)
  })
  const port = await listenOnLoopback(t, server)
  return {
    url: `https://127.0.0.1:${port}`,
    requests,
    ca: cert,
    handle: (next) => {
      current = next
    },
  }
}
