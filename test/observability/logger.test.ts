import t from 'tap'
import { createLogger } from '../../src/observability/logger.ts'
import { buildPullEvent } from '../../src/observability/pull-event.ts'
import { LogCapture, startApp } from '../helpers/app.ts'

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

t.test('request logging never shows the Authorization header or a configured secret', async (t) => {
  const yaml = `
docker:
  registries:
    - name: docker.io
      upstreams: [{ url: "https://registry.example", username: bob, password: "sup3r-secret-value" }]
`
  const { url, logs } = await startApp(t, { yaml, logLevel: 'trace' })
  await fetch(`${url}/nowhere?leak=sup3r-secret-value`, {
    headers: { authorization: 'Basic Ym9iOnNlY3JldA==' },
  })
  const all = logs.raw.join('\n')
  t.match(all, /"msg":"request"/, 'the request was logged')
  t.notMatch(all, 'sup3r-secret-value')
  t.notMatch(all, 'Ym9iOnNlY3JldA==')
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
