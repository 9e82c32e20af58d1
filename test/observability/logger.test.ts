import t from 'tap'
import { createLogger } from '../../src/observability/logger.ts'
import { buildPullEvent } from '../../src/observability/pull-event.ts'
import { LogCapture, startApp } from '../helpers/app.ts'
import { testConfig } from '../helpers/config.ts'
import { fakeUpstream } from '../helpers/fake-upstream.ts'

t.test('authorization headers and password fields are redacted by path', async (t) => {
  const out = new LogCapture()
  const logger = createLogger({ level: 'info', destination: out })
  logger.info(
    { req: { headers: { authorization: 'Bearer abc.def.ghi' } }, upstream: { password: 'pw1234' } },
    'x',
  )
  t.notMatch(out.raw.join('\n'), /abc\.def\.ghi|pw1234/)
  t.match(out.raw[0], /\[Redacted\]/)
})

t.test(
  'configured secrets are scrubbed wherever they appear, even inside messages and errors',
  async (t) => {
    const out = new LogCapture()
    const secret = 'hunter2-"quoted"-secret'
    const logger = createLogger({ level: 'info', secrets: [secret], destination: out })
    logger.error(
      { err: new Error(`login failed for password ${secret}`) },
      `retrying with ${secret}`,
    )
    const line = out.raw.join('\n')
    t.notMatch(line, 'hunter2')
    t.match(line, /\[Redacted\]/)
    t.equal(out.lines.length, 1, 'the line is still valid JSON')
  },
)

t.test(
  'request logging never shows the Authorization header or a configured secret, raw or in its Basic form',
  async (t) => {
    const password = 'sup3r-secret-value'
    const basic = Buffer.from(`bob:${password}`).toString('base64')
    // A hostile (or broken) index that echoes the Authorization header it received into
    // its page: the links point at a host that is not allowed, so pullthrough leaves
    // them out and logs them. Only the scrubber stands between the echo and the line.
    const upstream = await fakeUpstream(t, (req, res) => {
      const echo = encodeURIComponent(req.headers.authorization ?? 'none')
      res.writeHead(200, { 'content-type': 'text/html' })
      res.end(
        `<a href="https://elsewhere.example/${echo}/pkg-1.0.tar.gz#sha256=${'a'.repeat(64)}">pkg-1.0.tar.gz</a>`,
      )
    })
    const yaml = `
pypi:
  indexes:
    - name: pypi
      default: true
      upstreams: [{ url: "${upstream.url}/simple/", username: bob, password: "${password}" }]
`
    const { url, logs } = await startApp(t, { yaml, logLevel: 'trace' })
    // The client's request line carries its URL, query included.
    const res = await fetch(`${url}/simple/pkg/?leak=${password}&basic=${basic}`, {
      headers: { authorization: `Basic ${basic}` },
    })
    t.equal(res.status, 200)
    await res.arrayBuffer()
    t.equal(upstream.requests[0]?.headers.authorization, `Basic ${basic}`, 'the echo happened')
    const all = logs.raw.join('\n')
    t.match(all, /"msg":"request"/, 'the request was logged')
    t.match(all, /host not allowed/, 'the echoed links were logged')
    t.notMatch(all, password)
    t.notMatch(all, basic)
    t.notMatch(all, encodeURIComponent(basic))
  },
)

t.test('links left out of an index page are logged with origin and path only', async (t) => {
  const upstream = await fakeUpstream(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/html' })
    res.end(
      [
        `<a href="https://files.elsewhere.example/p/pkg-1.0.tar.gz?X-Amz-Signature=sig-value#sha256=${'b'.repeat(64)}">pkg-1.0.tar.gz</a>`,
        `<a href="https://user:pw-in-link@files.elsewhere.example/p/pkg-1.1.tar.gz#sha256=${'c'.repeat(64)}">pkg-1.1.tar.gz</a>`,
      ].join(''),
    )
  })
  const yaml = `pypi: { indexes: [{ name: pypi, default: true, upstreams: [{ url: "${upstream.url}/simple/" }] }] }\n`
  const { url, logs } = await startApp(t, { yaml })
  await (await fetch(`${url}/simple/pkg/`)).arrayBuffer()
  const line = logs.lines.find((l) => String(l.msg).includes('host not allowed'))
  t.same((line as { urls?: unknown } | undefined)?.urls, [
    'https://files.elsewhere.example/p/pkg-1.0.tar.gz',
    'https://files.elsewhere.example/p/pkg-1.1.tar.gz',
  ])
  t.notMatch(logs.raw.join('\n'), /sig-value|pw-in-link/)
})

t.test('the Basic form of configured credentials is scrubbed from any line', async (t) => {
  const { secrets } = await testConfig(
    t,
    `docker: { registries: [{ name: docker.io, upstreams: [{ url: "https://r.example", username: carol, password: "pw-for-carol" }] }] }\n`,
  )
  const out = new LogCapture()
  const logger = createLogger({ level: 'info', secrets, destination: out })
  const basic = Buffer.from('carol:pw-for-carol').toString('base64')
  logger.warn({ err: new Error(`upstream echoed Authorization: Basic ${basic}`) }, 'odd answer')
  t.notMatch(out.raw.join('\n'), basic)
  t.match(out.raw.join('\n'), 'Basic [Redacted]')
})

t.test('the pull event carries the protocol-specific field names', async (t) => {
  const event = buildPullEvent({
    protocol: 'docker',
    pool: 'docker.io',
    subject: 'library/busybox',
    reference: 'latest',
    digest: 'sha256:' + 'a'.repeat(64),
    action: 'get',
    cache: 'hit',
    bytes: 10,
    durationMs: 1.6,
    upstream: undefined,
    clientIp: '127.0.0.1',
  })
  t.match(event, {
    registry: 'docker.io',
    repository: 'library/busybox',
    reference: 'latest',
    durationMs: 2,
    cache: 'hit',
  })
  const py = buildPullEvent({
    protocol: 'pypi',
    pool: 'pypi',
    subject: 'requests',
    reference: 'requests-2.0-py3-none-any.whl',
    action: 'head',
    cache: 'miss',
    bytes: 0,
    durationMs: 0,
    clientIp: '::1',
  })
  t.match(py, { index: 'pypi', project: 'requests', file: 'requests-2.0-py3-none-any.whl' })
})
