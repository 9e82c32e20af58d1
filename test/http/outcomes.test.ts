/**
 * One outcome, one answer: every error code has an outcome, and Docker and
 * PyPI answer each outcome with the same status.
 */
import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { request } from 'undici'
import { OCI_OUTCOMES, toOciError } from '../../src/docker/errors.ts'
import { OUTCOME, PullthroughError, type ErrorCode, type Outcome } from '../../src/errors.ts'
import { MetadataUnavailableError } from '../../src/metadata/errors.ts'
import { PYPI_OUTCOMES, describePypiError } from '../../src/pypi/http-errors.ts'
import { StorageWriteError } from '../../src/storage/errors.ts'
import { UpstreamAuthError } from '../../src/upstream/errors.ts'
import { startApp } from '../helpers/app.ts'
import { fakeUpstream } from '../helpers/fake-upstream.ts'
import { randomBlob } from '../helpers/streams.ts'

const OUTCOMES: readonly Outcome[] = [
  'not_found',
  'invalid',
  'rate_limited',
  'denied',
  'unavailable',
  'bad_upstream',
  'internal',
]

/** Any code, as the layers below would raise it. */
class Coded extends PullthroughError {
  constructor(readonly code: ErrorCode) {
    super(code)
  }
}

async function sourceFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true, recursive: true })
  return entries
    .filter((e) => e.isFile() && e.name.endsWith('.ts'))
    .map((e) => join(e.parentPath, e.name))
}

t.test('every code raised in src/ has an outcome', async (t) => {
  const raised = new Set<string>()
  for (const file of await sourceFiles('src')) {
    const text = await readFile(file, 'utf8')
    for (const m of text.matchAll(/readonly code = '(PT_[A-Z_]+)'/g)) raised.add(m[1]!)
  }
  t.ok(raised.size > 30, `found ${raised.size} codes`)
  for (const code of raised) t.ok(code in OUTCOME, `${code} has an outcome`)
  for (const [code, outcome] of Object.entries(OUTCOME))
    t.ok(OUTCOMES.includes(outcome), `${code}: ${outcome} is an outcome`)
})

t.test('Docker and PyPI answer each outcome with the same status', async (t) => {
  for (const outcome of OUTCOMES)
    t.equal(OCI_OUTCOMES[outcome].status, PYPI_OUTCOMES[outcome].status, outcome)
  for (const code of Object.keys(OUTCOME) as ErrorCode[]) {
    const error = new Coded(code)
    t.equal(toOciError(error, 'r').status, describePypiError(error, 'i').status, code)
  }
})

t.test('metadata store and disk failures are 503 on both protocols, not 500', async (t) => {
  for (const error of [
    new MetadataUnavailableError('redis', 'getTag'),
    new StorageWriteError('disk full'),
  ]) {
    t.equal(toOciError(error, 'docker.io').status, 503, error.code)
    t.equal(describePypiError(error, 'pypi').status, 503, error.code)
    t.notMatch(describePypiError(error, 'pypi').message, /upstream/, 'not blamed on an upstream')
  }
})

t.test('an upstream 403 is 403 on both; refused credentials are 502 on both', async (t) => {
  const denied = new UpstreamAuthError('p', 'm', 403)
  const refused = new UpstreamAuthError('p', 'm', 401)
  t.equal(toOciError(denied, 'r').status, 403)
  t.equal(describePypiError(denied, 'i').status, 403)
  t.equal(toOciError(refused, 'r').status, 502)
  t.equal(describePypiError(refused, 'i').status, 502)
})

t.test('upstream 429 on every mirror is 429 on Docker and on PyPI', async (t) => {
  const limited = await fakeUpstream(t, (_req, res) =>
    res.writeHead(429, { 'retry-after': '1' }).end(),
  )
  const other = await fakeUpstream(t, (_req, res) => res.writeHead(429).end())
  const { url } = await startApp(t, {
    yaml: `docker: { registries: [{ name: docker.io, default: true, upstreams: [{ url: "${limited.url}" }, { url: "${other.url}" }], retry: { attempts: 1 } }] }
pypi: { indexes: [{ name: pypi, default: true, upstreams: [{ url: "${limited.url}/simple/" }, { url: "${other.url}/simple/" }], retry: { attempts: 1 } }] }
`,
  })
  for (const path of [
    '/v2/library/busybox/manifests/latest',
    `/v2/library/busybox/blobs/${randomBlob(8).digest}`,
    '/simple/requests/',
  ]) {
    const res = await request(`${url}${path}`)
    const body = await res.body.text()
    t.equal(res.statusCode, 429, path)
    t.match(body, /rate-limit/, path)
  }
})
