/**
 * How failed requests are logged: answers to client mistakes (4xx) at info
 * with code, status and message and no stack, so a client cannot flood the
 * error log; server-side failures (5xx) at error.
 */
import t from 'tap'
import { request } from 'undici'
import { startApp } from '../helpers/app.ts'
import { closedPort } from '../helpers/fake-upstream.ts'
import { startPypiUpstream } from '../helpers/pypi-upstream.ts'
import { startRegistry } from '../helpers/registry.ts'

const ERROR_LEVEL = 50

t.test('4xx answers are logged below error level and without a stack', async (t) => {
  const registry = await startRegistry(t)
  const index = await startPypiUpstream(t)
  const { url, logs } = await startApp(t, {
    yaml: `docker: { registries: [{ name: docker.io, default: true, upstreams: [{ url: "${registry.url}" }] }] }
pypi: { indexes: [{ name: pypi, default: true, upstreams: [{ url: "${index.index}" }] }] }
`,
  })
  for (const [path, status] of [
    ['/v2/Bad_Name/manifests/latest', 400],
    [`/v2/library/busybox/blobs/sha256:${'b'.repeat(64)}`, 404],
    ['/simple/no-such-project/', 404],
  ] as const) {
    const res = await request(`${url}${path}`)
    await res.body.dump()
    t.equal(res.statusCode, status, path)
  }
  const errors = logs.lines.filter((l) => (l.level as number) >= ERROR_LEVEL)
  t.same(errors, [], 'no line at error level or above')
  const rejected = logs.lines.filter((l) => l.msg === 'request rejected')
  t.equal(rejected.length, 3)
  t.match(rejected, [
    { level: 30, status: 400, code: 'PT_OCI', message: 'invalid repository name' },
    { level: 30, status: 404, code: 'PT_BLOB_UNKNOWN' },
    { level: 30, status: 404, code: 'PT_PROJECT_UNKNOWN' },
  ])
  t.ok(
    rejected.every((l) => l.err === undefined && !JSON.stringify(l).includes('"stack"')),
    'no error object or stack in these lines',
  )
  t.same(
    logs.raw.filter((line) => line.includes('"stack"')),
    [],
    'no line carries a stack, the fill of the unknown blob included',
  )
})

t.test('5xx answers are still logged at error level', async (t) => {
  const port = await closedPort()
  const { url, logs } = await startApp(t, {
    yaml: `docker: { registries: [{ name: docker.io, default: true, upstreams: [{ url: "http://127.0.0.1:${port}" }], retry: { attempts: 1 } }] }\n`,
  })
  const res = await request(`${url}/v2/library/busybox/blobs/sha256:${'c'.repeat(64)}`)
  await res.body.dump()
  t.equal(res.statusCode, 503)
  t.match(
    logs.lines.filter((l) => (l.level as number) >= ERROR_LEVEL),
    [{ msg: 'request failed', code: 'PT_UPSTREAM_UNAVAILABLE' }],
  )
})
