/**
 * Reads the JSON API of a running pullthrough (`/-/api/v1/`) for the CLI's
 * client commands, with a bounded wait and errors that say what to do.
 */
import type { Config } from '../config/schema.ts'

/** Bound on one API request from the CLI. */
export const CLIENT_TIMEOUT_MS = 10_000

/** The server could not be asked, or refused: the message is for the terminal. */
export class ClientError extends Error {}

/** Where the server of `config` listens, as seen from this machine. */
export function localUrl(config: Config): string {
  const scheme = config.server.tls ? 'https' : 'http'
  const host = ['0.0.0.0', '::', ''].includes(config.server.host) ? '127.0.0.1' : config.server.host
  return `${scheme}://${host.includes(':') ? `[${host}]` : host}:${config.server.port}`
}

export async function getJson(
  base: string,
  path: string,
  token: string | undefined,
): Promise<unknown> {
  return requestJson(base, path, token)
}

/** POSTs `body` as JSON; a 2xx answer is parsed. */
export async function sendJson(
  base: string,
  path: string,
  token: string | undefined,
  body: unknown,
): Promise<unknown> {
  return requestJson(base, path, token, JSON.stringify(body))
}

/** DELETEs `path`; a 2xx answer is parsed (undefined when it has no body). */
export async function deleteJson(
  base: string,
  path: string,
  token: string | undefined,
): Promise<unknown> {
  return requestJson(base, path, token, undefined, 'DELETE')
}

async function requestJson(
  base: string,
  path: string,
  token: string | undefined,
  /** A JSON body to POST; a GET (or `method`) without. */
  body?: string,
  method?: 'DELETE',
): Promise<unknown> {
  const url = apiUrl(base, path)
  const headers: Record<string, string> = {}
  if (token !== undefined) headers.authorization = `Bearer ${token}`
  if (body !== undefined) headers['content-type'] = 'application/json'
  let res: Response
  try {
    res = await fetch(url, {
      method: method ?? (body === undefined ? 'GET' : 'POST'),
      headers,
      ...(body === undefined ? {} : { body }),
      signal: AbortSignal.timeout(CLIENT_TIMEOUT_MS),
    })
  } catch (error) {
    throw unreachable(base, (error as { cause?: { code?: string } }).cause?.code ?? error)
  }
  const text = await res.text()
  if (res.status === 401) throw needsToken(base)
  if (res.status < 200 || res.status > 299) {
    const message = errorMessage(text) ?? text.slice(0, 200)
    throw new ClientError(`${url} answered ${res.status}: ${message}`)
  }
  return text === '' ? undefined : (JSON.parse(text) as unknown)
}

/** `/-/api/v1/<path>` of the server at `base`. */
export function apiUrl(base: string, path: string): string {
  return `${base.replace(/\/+$/, '')}/-/api/v1/${path}`
}

/** The server could not be asked: `cause` is an error code, or the error. */
export function unreachable(base: string, cause: unknown): ClientError {
  const code =
    typeof cause === 'string' ? cause : ((cause as { code?: string }).code ?? (cause as Error).name)
  return new ClientError(`cannot reach pullthrough at ${base} (${code}); is it running? (--url)`)
}

/** The server answered 401. */
export function needsToken(base: string): ClientError {
  return new ClientError(
    `${base} requires the admin token: pass --token or set PULLTHROUGH_ADMIN_TOKEN`,
  )
}

/** The `message` of a JSON error body (quotes in it included); undefined when there is none. */
export function errorMessage(text: string): string | undefined {
  try {
    const message = (JSON.parse(text) as { message?: unknown } | null)?.message
    return typeof message === 'string' ? message : undefined
  } catch {
    return undefined
  }
}
