/**
 * What a Docker client sees when the upstream side fails: OCI codes that say
 * what happened (rate limit, access denied, credentials refused, all down),
 * a detail naming the registry, and never a secret or an upstream address.
 */
import t, { type Test } from 'tap'
import { startApp } from '../helpers/app.ts'
import { fakeUpstream, type Handler } from '../helpers/fake-upstream.ts'
import { get } from '../helpers/http.ts'
import { startRegistry } from '../helpers/registry.ts'
import { randomBlob } from '../helpers/streams.ts'

const SECRET = 'hunter2-upstream-secret'
/** The Basic form of someone:SECRET (unpadded: found whatever became of its `=`). */
const BASIC = Buffer.from(`someone:${SECRET}`).toString('base64').replace(/=+$/, '')

async function appWith(t: Test, upstreamUrl: string) {
  return startApp(t, {
    yaml: `docker:
  registries:
    - name: docker.io
      default: true
      upstreams: [{ url: "${upstreamUrl}", username: someone, password: "${SECRET}" }]
      retry: { attempts: 1 }
`,
  })
}

const paths = {
  manifest: '/v2/library/busybox/manifests/latest',
  blob: `/v2/library/busybox/blobs/${randomBlob(8).digest}`,
  tags: '/v2/library/busybox/tags/list',
}

for (const [fault, handler, status, code] of [
  [
    '429 from every mirror',
    (_req, res) => res.writeHead(429, { 'retry-after': '1' }).end(),
    429,
    'TOOMANYREQUESTS',
  ],
  ['403 from the upstream', (_req, res) => res.writeHead(403).end(), 403, 'DENIED'],
  ['503 from every mirror', (_req, res) => res.writeHead(503).end(), 503, 'UNAVAILABLE'],
] as [string, Handler, number, string][]) {
  t.test(`${fault} answers ${status} ${code} on every endpoint`, async (t) => {
    const upstream = await fakeUpstream(t, handler)
    const { url, logs } = await appWith(t, upstream.url)
    for (const [kind, path] of Object.entries(paths)) {
      const res = await get(`${url}${path}`)
      t.equal(res.status, status, kind)
      t.match(res.json(), { errors: [{ code, detail: { registry: 'docker.io' } }] }, kind)
      t.notMatch(
        res.text,
        new RegExp(`${SECRET}|127\\.0\\.0\\.1`),
        `${kind}: no secret, no address`,
      )
    }
    t.notMatch(logs.raw.join('\n'), SECRET, 'the password never reaches a log')
    t.notMatch(logs.raw.join('\n'), BASIC, 'nor its Basic form')
  })
}

t.test('credentials a real token-auth registry refuses answer 502 UNAUTHORIZED', async (t) => {
  const registry = await startRegistry(t, { auth: { username: 'puller', password: 'right' } })
  // Nothing needs to be pushed: the token server refuses before the registry is asked.
  const { url, logs } = await appWith(t, registry.url)
  for (const [kind, path] of Object.entries(paths)) {
    const res = await get(`${url}${path}`)
    t.equal(res.status, 502, kind)
    t.match(res.json(), { errors: [{ code: 'UNAUTHORIZED', detail: { registry: 'docker.io' } }] })
    t.notMatch(res.text, SECRET)
  }
  t.notMatch(logs.raw.join('\n'), SECRET)
  t.notMatch(logs.raw.join('\n'), BASIC)
  const tokens = registry.auth?.tokenServer.tokenRequests ?? []
  t.ok(
    tokens.some((r) => r.withCredentials && r.status === 401),
    'the token server refused them',
  )
})

t.test(
  'a 400 from the upstream is told as an unexpected upstream answer, not a digest problem',
  async (t) => {
    const upstream = await fakeUpstream(t, (_req, res) => res.writeHead(400).end('bad request'))
    const { url } = await appWith(t, upstream.url)
    for (const [kind, path] of Object.entries(paths)) {
      const res = await get(`${url}${path}`)
      t.equal(res.status, 502, kind)
      t.match(
        res.json(),
        { errors: [{ message: /unexpected status/, detail: { registry: 'docker.io' } }] },
        kind,
      )
      t.notMatch(res.text, /verified|digest/i, `${kind}: nothing about content verification`)
    }
  },
)
