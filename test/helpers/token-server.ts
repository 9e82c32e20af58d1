/**
 * A Docker Hub-style token server (Docker's "token authentication" spec) for
 * tests: GET /token?service=S&scope=repository:NAME:pull,push answers an RS256
 * JWT that a Distribution registry configured with `auth: token:` accepts.
 * Anonymous requests get `pull` at most; requests with the configured Basic
 * credentials get what they ask for; wrong credentials get 401. Every token
 * request is recorded so tests can assert on the token flow.
 *
 * What Distribution 2.8 checks (registry/auth/token/token.go): `iss` equals its
 * configured issuer, `aud` is a single string equal to its service (an array
 * fails to parse), exp/nbf within 60 s of leeway, and the signing key comes from
 * the header's `x5c` chain (standard base64 DER, not base64url), which must
 * verify against `rootcertbundle`. A self-signed certificate that is itself in
 * the bundle verifies as its own chain.
 */
import { execFile } from 'node:child_process'
import { createPrivateKey, randomUUID, sign, X509Certificate } from 'node:crypto'
import { once } from 'node:events'
import { readFile } from 'node:fs/promises'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { join } from 'node:path'
import { promisify } from 'node:util'
import type { Test } from 'tap'
import { tempDir } from './config.ts'

/** Default token lifetime; Docker Hub gives 300 s. */
const DEFAULT_TOKEN_TTL_S = 300

export interface TokenServerOptions {
  readonly username: string
  readonly password: string
  /** The `iss` claim; the registry must be configured with the same issuer. */
  readonly issuer?: string
  /** Token lifetime in seconds (`exp - iat` and `expires_in`). */
  readonly tokenTtlS?: number
  /** false: anonymous requests get a token with no access (a private registry). */
  readonly anonymousPull?: boolean
}

/** One granted (or refused) resource, as in the JWT `access` claim. */
export interface ResourceAccess {
  readonly type: string
  readonly name: string
  readonly actions: string[]
}

export interface TokenRequest {
  readonly service: string | null
  /** Every `scope` parameter as sent (clients may send several). */
  readonly scopes: string[]
  /** Whether the request carried Basic credentials (right or wrong). */
  readonly withCredentials: boolean
  readonly status: 200 | 401
  /** What the issued token allows; empty for a 401. */
  readonly granted: ResourceAccess[]
}

export interface TokenServer {
  /** Origin, http://127.0.0.1:PORT. */
  readonly url: string
  /** The token endpoint, for the registry's `auth.token.realm`. */
  readonly realm: string
  readonly issuer: string
  /** PEM file of the signing certificate, for the registry's `auth.token.rootcertbundle`. */
  readonly rootCertBundle: string
  readonly tokenRequests: TokenRequest[]
  close(): Promise<void>
}

const execFileAsync = promisify(execFile)

/** Starts a token server on 127.0.0.1:0 with a fresh RSA key and self-signed certificate. */
export async function startTokenServer(t: Test, options: TokenServerOptions): Promise<TokenServer> {
  const dir = await tempDir(t, 'pt-token-')
  const keyFile = join(dir, 'key.pem')
  const certFile = join(dir, 'cert.pem')
  await execFileAsync('openssl', [
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-sha256',
    '-days',
    '2',
    '-subj',
    '/CN=pullthrough test token issuer',
    '-keyout',
    keyFile,
    '-out',
    certFile,
  ])
  const privateKey = createPrivateKey(await readFile(keyFile))
  // x5c carries the DER certificate in standard base64 (RFC 7515 §4.1.6).
  const x5c = new X509Certificate(await readFile(certFile)).raw.toString('base64')
  const issuer = options.issuer ?? 'pullthrough-test-token-issuer'
  const ttl = options.tokenTtlS ?? DEFAULT_TOKEN_TTL_S
  const tokenRequests: TokenRequest[] = []

  const mint = (service: string, subject: string, access: ResourceAccess[]): string => {
    const now = Math.floor(Date.now() / 1000)
    const header = { typ: 'JWT', alg: 'RS256', x5c: [x5c] }
    const claims = {
      iss: issuer,
      sub: subject,
      aud: service,
      exp: now + ttl,
      nbf: now,
      iat: now,
      jti: randomUUID(),
      access,
    }
    const input = `${base64url(header)}.${base64url(claims)}`
    const signature = sign('sha256', Buffer.from(input), privateKey).toString('base64url')
    return `${input}.${signature}`
  }

  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const url = new URL(req.url ?? '/', 'http://token.invalid')
    if (req.method !== 'GET' || url.pathname !== '/token') {
      // 404 (not 405) also for POST: containerd then falls back to GET, as with GCR.
      res.writeHead(404).end()
      return
    }
    const service = url.searchParams.get('service')
    const scopes = url.searchParams.getAll('scope')
    const basic = parseBasic(req.headers.authorization)
    if (basic && (basic.username !== options.username || basic.password !== options.password)) {
      tokenRequests.push({ service, scopes, withCredentials: true, status: 401, granted: [] })
      res.writeHead(401, {
        'content-type': 'application/json',
        'www-authenticate': 'Basic realm="pullthrough-test"',
      })
      res.end(JSON.stringify({ details: 'incorrect username or password' }))
      return
    }
    const requested = scopes.flatMap((s) => s.split(' ')).flatMap(parseScope)
    const granted = basic
      ? requested
      : requested
          .map((r) => ({
            ...r,
            actions: options.anonymousPull === false ? [] : r.actions.filter((a) => a === 'pull'),
          }))
          .filter((r) => r.actions.length > 0)
    tokenRequests.push({
      service,
      scopes,
      withCredentials: basic !== undefined,
      status: 200,
      granted,
    })
    const token = mint(service ?? '', basic ? basic.username : '', granted)
    res.writeHead(200, { 'content-type': 'application/json' })
    res.end(
      JSON.stringify({
        token,
        access_token: token,
        expires_in: ttl,
        issued_at: new Date().toISOString(),
      }),
    )
  }

  const server = createServer(handle)
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as { port: number }
  let closed = false
  const close = async () => {
    if (closed) return
    closed = true
    server.closeAllConnections()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  }
  t.teardown(close)
  const url = `http://127.0.0.1:${port}`
  return {
    url,
    realm: `${url}/token`,
    issuer,
    rootCertBundle: certFile,
    tokenRequests,
    close,
  }
}

function base64url(value: object): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url')
}

/** `repository:library/busybox:pull,push` -> type, name, actions. Names may hold ':' (host:port). */
function parseScope(scope: string): ResourceAccess[] {
  const first = scope.indexOf(':')
  const last = scope.lastIndexOf(':')
  if (first <= 0 || last === first) return []
  return [
    {
      type: scope.slice(0, first),
      name: scope.slice(first + 1, last),
      actions: scope
        .slice(last + 1)
        .split(',')
        .filter((a) => a !== ''),
    },
  ]
}

function parseBasic(
  header: string | undefined,
): { username: string; password: string } | undefined {
  const match = /^basic\s+(\S+)$/i.exec(header ?? '')
  if (!match?.[1]) return undefined
  const decoded = Buffer.from(match[1], 'base64').toString()
  const colon = decoded.indexOf(':')
  if (colon < 0) return { username: decoded, password: '' }
  return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) }
}
