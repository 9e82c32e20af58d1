/**
 * Who a client is, and the credentials it presented: Basic (`user:password`,
 * what pip, uv, skopeo --creds and containerd headers send) or Bearer (a
 * registry token from /-/token, or admin.token).
 */

/** A signed-in client. */
export interface Identity {
  readonly name: string
  readonly groups: readonly string[]
}

export type Credentials =
  | { readonly kind: 'basic'; readonly user: string; readonly password: string }
  | { readonly kind: 'bearer'; readonly token: string }

/** Longest Authorization header read; longer ones are refused unread. */
export const MAX_AUTHORIZATION_CHARS = 8192

/**
 * The credentials of an Authorization header; undefined when there is none,
 * 'malformed' when there is one that cannot be read (a 401, never anonymous).
 */
export function parseAuthorization(
  header: string | undefined,
): Credentials | 'malformed' | undefined {
  if (header === undefined || header === '') return undefined
  if (header.length > MAX_AUTHORIZATION_CHARS) return 'malformed'
  const match = /^([A-Za-z]+) +(\S+) *$/.exec(header)
  if (!match) return 'malformed'
  const [, scheme = '', value = ''] = match
  switch (scheme.toLowerCase()) {
    case 'bearer':
      return { kind: 'bearer', token: value }
    case 'basic': {
      if (!/^[A-Za-z0-9+/]+=*$/.test(value)) return 'malformed'
      const decoded = Buffer.from(value, 'base64').toString('utf8')
      const colon = decoded.indexOf(':')
      if (colon < 1) return 'malformed'
      return { kind: 'basic', user: decoded.slice(0, colon), password: decoded.slice(colon + 1) }
    }
    default:
      return 'malformed'
  }
}
