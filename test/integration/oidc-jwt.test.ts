/**
 * JWTs of an external identity provider (the OIDC tokens of CI systems and
 * Kubernetes workloads) sign clients in: checked against the provider's JWKS
 * (by URL, or from a file), issuer, audience and expiry; user and groups from
 * claims. No identity provider is installable here; what pullthrough reads of
 * one is a static JWKS document, which a plain HTTP server serves as the
 * provider's endpoint would.
 */
import { createServer } from 'node:http'
import { once } from 'node:events'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey } from 'jose'
import t, { type Test } from 'tap'
import { request } from 'undici'
import { startApp } from '../helpers/app.ts'
import { tempDir } from '../helpers/config.ts'
import { buildImage, inspectManifest } from '../helpers/images.ts'
import { startRegistry } from '../helpers/registry.ts'

const ISSUER = 'https://ci.example.com'
const AUDIENCE = 'pullthrough'

/** A provider: its key pair, its JWKS document (public key only) served over HTTP. */
async function provider(t: Test) {
  const { publicKey, privateKey } = await generateKeyPair('RS256')
  const jwk = { ...(await exportJWK(publicKey)), kid: 'key-1', alg: 'RS256', use: 'sig' }
  const jwks = JSON.stringify({ keys: [jwk] })
  let fetches = 0
  const server = createServer((req, res) => {
    fetches++
    res.writeHead(req.url === '/.well-known/jwks.json' ? 200 : 404, {
      'content-type': 'application/json',
    })
    res.end(jwks)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => server.close())
  const { port } = server.address() as { port: number }
  return {
    jwks,
    privateKey,
    url: `http://127.0.0.1:${port}/.well-known/jwks.json`,
    fetches: () => fetches,
  }
}

interface Claims {
  sub?: string
  groups?: unknown
  iss?: string
  aud?: string
  expiresIn?: number
}

async function sign(key: CryptoKey, claims: Claims, kid = 'key-1'): Promise<string> {
  const now = Math.floor(Date.now() / 1000)
  return new SignJWT({ groups: claims.groups ?? ['ci'] })
    .setProtectedHeader({ alg: 'RS256', kid })
    .setIssuer(claims.iss ?? ISSUER)
    .setAudience(claims.aud ?? AUDIENCE)
    .setSubject(claims.sub ?? 'repo:myorg/app:ref:refs/heads/main')
    .setIssuedAt(now)
    .setExpirationTime(now + (claims.expiresIn ?? 300))
    .sign(key)
}

async function setup(t: Test, keys: (jwks: { url: string; file: string }) => string) {
  const idp = await provider(t)
  const registry = await startRegistry(t)
  const dir = await tempDir(t, 'pt-oidc-')
  const image = await buildImage(join(dir, 'oci'), { layers: [1024], tag: 'v1' })
  await registry.pushImage(image, 'myorg/app:v1')
  const file = join(dir, 'jwks.json')
  await writeFile(file, idp.jwks)
  const app = await startApp(t, {
    yaml: `docker:
  registries:
    - { name: docker.io, default: true, upstreams: [{ url: "${registry.url}" }], retry: { attempts: 1 } }
pypi: { indexes: [] }
auth:
  jwt:
    ${keys({ url: idp.url, file })}
    issuer: ${ISSUER}
    audience: ${AUDIENCE}
access:
  - { registry: docker.io, repository: "myorg/**", groups: [ci] }
`,
  })
  const manifest = async (authorization: string) => {
    const res = await request(`${app.url}/v2/myorg/app/manifests/v1`, {
      headers: { authorization, accept: 'application/vnd.oci.image.manifest.v1+json' },
    })
    await res.body.dump()
    return res.statusCode
  }
  return { idp, app, manifest, host: new URL(app.url).host, digest: image.manifests[0]!.digest }
}

t.test('a token of the provider pulls; altered, foreign or stale ones do not', async (t) => {
  const { idp, manifest, host, digest } = await setup(t, (k) => `jwksUrl: ${k.url}`)
  const good = await sign(idp.privateKey, {})
  t.equal(await manifest(`Bearer ${good}`), 200, 'as a Bearer token')
  t.equal(
    (await inspectManifest(t, `${host}/myorg/app:v1`, `oidc:${good}`)).digest,
    digest,
    'as the password of skopeo --creds, through the token flow',
  )
  t.equal(await manifest(`Bearer ${await sign(idp.privateKey, { aud: 'other' })}`), 401, 'audience')
  t.equal(
    await manifest(`Bearer ${await sign(idp.privateKey, { iss: 'https://evil' })}`),
    401,
    'issuer',
  )
  t.equal(
    await manifest(`Bearer ${await sign(idp.privateKey, { expiresIn: -60 })}`),
    401,
    'expired',
  )
  const stranger = await generateKeyPair('RS256')
  t.equal(
    await manifest(`Bearer ${await sign(stranger.privateKey, {})}`),
    401,
    'another key, same kid',
  )
  const [, payload, signature] = good.split('.') as [string, string, string]
  const hs = Buffer.from(JSON.stringify({ alg: 'HS256', typ: 'JWT', kid: 'key-1' })).toString(
    'base64url',
  )
  t.equal(await manifest(`Bearer ${hs}.${payload}.${signature}`), 401, 'HS256 refused')
  t.equal(
    await manifest(`Bearer ${await sign(idp.privateKey, { groups: ['other'] })}`),
    403,
    'signed in, but not in a group the rule names',
  )
  t.equal(
    await manifest(`Bearer ${await sign(idp.privateKey, { groups: 'ci' })}`),
    200,
    'a string group',
  )
  t.ok(idp.fetches() >= 1 && idp.fetches() <= 3, `the JWKS is cached (${idp.fetches()} fetches)`)
})

t.test('keys from a JWKS file work the same', async (t) => {
  const { idp, manifest } = await setup(t, (k) => `jwksFile: ${k.file}`)
  t.equal(await manifest(`Bearer ${await sign(idp.privateKey, {})}`), 200)
  t.equal(idp.fetches(), 0, 'the URL is never asked')
  const stranger = await generateKeyPair('RS256')
  t.equal(await manifest(`Bearer ${await sign(stranger.privateKey, {})}`), 401)
})

t.test('the config wants one key source, and a readable JWKS file', async (t) => {
  const bad = (jwt: string) =>
    startApp(t, { yaml: `auth:\n  jwt: { ${jwt}, issuer: x, audience: y }\n` })
  await t.rejects(bad('jwksUrl: "http://a/", jwksFile: /x'), /set exactly one of jwksUrl, jwksFile/)
  await t.rejects(
    bad('jwksFile: /nonexistent/jwks.json'),
    /auth.jwt.jwksFile: cannot read the file \(ENOENT\)/,
  )
  const dir = await tempDir(t)
  await writeFile(join(dir, 'bad.json'), '{"nokeys": true}')
  await t.rejects(
    bad(`jwksFile: ${join(dir, 'bad.json')}`),
    /auth.jwt.jwksFile: not a JWKS document/,
  )
})
