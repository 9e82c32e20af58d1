/**
 * Property-based tests of what reads credentials: Authorization headers,
 * htpasswd and groups lines, token scopes, registry tokens and identity
 * provider JWTs. Whatever the input: no crash (only the parser's own error),
 * bounded time, and a token whose bytes differ from the issued one never
 * checks out.
 */
import fc from 'fast-check'
import t from 'tap'
import { ExternalJwt } from '../../src/auth/external-jwt.ts'
import { parseGroups, parseHtpasswd } from '../../src/auth/htpasswd.ts'
import { MAX_AUTHORIZATION_CHARS, parseAuthorization } from '../../src/auth/identity.ts'
import { parseScope, RegistryTokens } from '../../src/auth/registry-token.ts'
import { loadSigningKey } from '../../src/auth/signing-key.ts'
import { tempDir } from '../helpers/config.ts'
import { RUNS, text, timed } from '../helpers/fuzz.ts'

const base64url = fc.stringMatching(/^[A-Za-z0-9_-]{0,80}$/)

t.test('Authorization: any header is credentials, none, or malformed', async () => {
  const basic = fc
    .tuple(text, text)
    .map(([user, password]) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`)
  fc.assert(
    fc.property(
      fc.oneof(
        text,
        basic,
        text.map((s) => `Bearer ${s}`),
      ),
      (header) => {
        const parsed = timed(() => parseAuthorization(header))
        if (parsed === undefined) return header === ''
        if (parsed === 'malformed') return true
        if (header.length > MAX_AUTHORIZATION_CHARS) return false
        return parsed.kind === 'bearer'
          ? parsed.token.length > 0 && !/\s/.test(parsed.token)
          : parsed.user.length > 0 && !parsed.user.includes(':')
      },
    ),
    RUNS,
  )
})

t.test('htpasswd and groups files: parsed, or refused naming a line', async () => {
  const lines = fc
    .array(
      fc.oneof(
        text,
        fc.constantFrom('# c', '', 'u:$2y$10$' + 'a'.repeat(53), 'u:{SHA}x', ':', 'g: a b'),
      ),
      { maxLength: 8 },
    )
    .map((l) => l.join('\n'))
  fc.assert(
    fc.property(lines, (file) => {
      for (const parse of [parseHtpasswd, parseGroups]) {
        try {
          timed(() => parse(file))
        } catch (error) {
          if (!(error instanceof Error) || !/^line \d+/.test(error.message)) throw error
        }
      }
    }),
    RUNS,
  )
  fc.assert(
    fc.property(text, (scope) => {
      const grant = timed(() => parseScope(scope))
      return grant === undefined || (grant.type.length > 0 && !grant.type.includes(':'))
    }),
    RUNS,
  )
})

t.test('registry tokens: only the issued token checks out, whatever is changed', async (t) => {
  const key = await loadSigningKey(undefined, await tempDir(t, 'pt-fuzz-key-'))
  const tokens = new RegistryTokens(key, 60_000)
  const issued = await tokens.issue({ name: 'alice', groups: [] }, [
    { type: 'repository', name: 'library/app', actions: ['pull'] },
  ])
  t.ok(await tokens.verify(issued))
  await fc.assert(
    fc.asyncProperty(
      fc.oneof(
        text,
        fc.tuple(base64url, base64url, base64url).map((parts) => parts.join('.')),
        // One character of the issued token changed, or a part replaced.
        fc
          .tuple(
            fc.nat(issued.length - 1),
            fc.constantFrom('A', 'B', 'C', 'a', 'b', 'c', '0', '1', '2', '-', '_', '.'),
          )
          .map(([at, c]) => issued.slice(0, at) + c + issued.slice(at + 1))
          .filter((changed) => !sameBytes(changed, issued)),
        fc
          .tuple(fc.nat(2), base64url)
          .map(([part, value]) =>
            issued
              .split('.')
              .map((p, i) => (i === part ? value : p))
              .join('.'),
          )
          .filter((changed) => !sameBytes(changed, issued)),
      ),
      async (token) => (await tokens.verify(token)) === undefined,
    ),
    RUNS,
  )
})

/**
 * Whether two compact JWTs decode to the same bytes: the last base64url
 * character of a part carries padding bits, so some changes to it change
 * nothing that is signed (that is encoding, not forgery).
 */
function sameBytes(a: string, b: string): boolean {
  const parts = (token: string) => token.split('.').map((p) => Buffer.from(p, 'base64url'))
  const [x, y] = [parts(a), parts(b)]
  return x.length === y.length && x.every((part, i) => y[i]?.equals(part) === true)
}

t.test('identity provider JWTs: garbage never signs in, and never throws', async () => {
  const jwt = new ExternalJwt(
    { issuer: 'https://idp', audience: 'pt', userClaim: 'sub', groupsClaim: 'groups' },
    { file: async () => ({ keys: [] }) },
  )
  await fc.assert(
    fc.asyncProperty(
      fc.oneof(
        text,
        fc
          .tuple(fc.jsonValue(), fc.jsonValue(), base64url)
          .map(
            ([h, p, s]) =>
              `${Buffer.from(JSON.stringify(h)).toString('base64url')}.${Buffer.from(JSON.stringify(p)).toString('base64url')}.${s}`,
          ),
      ),
      async (token) => (await jwt.verify(token)) === undefined,
    ),
    RUNS,
  )
})
