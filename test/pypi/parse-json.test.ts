import t from 'tap'
import { PYPI_REQUESTS_JSON } from './fixtures/pages.ts'
import { ProjectPageInvalidError } from '../../src/pypi/errors.ts'
import { parseProjectJson } from '../../src/pypi/parse-json.ts'

const PAGE_URL = 'https://pypi.org/simple/requests/'
const SHA = 'ab'.repeat(32)

const parse = (body: string) => parseProjectJson(body, { project: 'Requests', pageUrl: PAGE_URL })

/** A v1.0 page with these file entries. */
const doc = (files: unknown[], extra: Record<string, unknown> = {}): string =>
  JSON.stringify({ meta: { 'api-version': '1.0' }, name: 'requests', files, ...extra })

t.test('reads a pypi.org v1.1 page with the PEP 700 fields', async (t) => {
  const { page, dropped, apiVersion } = parse(PYPI_REQUESTS_JSON)
  t.strictSame(dropped, [])
  t.equal(apiVersion, '1.1')
  t.equal(page.name, 'requests')
  t.equal(page.lastSerial, 23846711)
  t.strictSame(page.versions, ['2.0.0', '2.31.0', '2.32.0', '2.32.3'])
  t.equal(page.files.length, 7)
  t.strictSame(page.files[3], {
    filename: 'requests-2.32.0-py3-none-any.whl',
    url: 'https://files.pythonhosted.org/packages/d6/b6/612aeb5c0f4c05f9f4d3e79375daddc5aa13d0e18f80750290cf7ab21f/requests-2.32.0-py3-none-any.whl',
    hashes: { sha256: '71c5cff03e87b9bb34d628eb9221e408f691ecf8317ec99185790c9b0870af97' },
    requiresPython: '>=3.8',
    yanked: 'Yanked due to conflicts with CVE-2024-35195 mitigation',
    coreMetadata: { sha256: '0a4d68ed09ebe373b25e640c23dae3ac8e6cc67b6e2c36bf0bea084fa83c8b26' },
    size: 63475,
    uploadTime: '2024-05-20T15:13:13.026046Z',
  })
  const first = page.files[0]!
  t.equal(first.requiresPython, undefined, 'null requires-python is absent')
  t.equal(first.yanked, undefined, 'yanked: false is absent')
  t.equal(first.coreMetadata, undefined, 'core-metadata: false is absent')
})

t.test('resolves relative file URLs against the page URL', async (t) => {
  const { page } = parse(
    doc([{ filename: 'requests-1.0.tar.gz', url: '../../packages/requests-1.0.tar.gz#sha256=x' }]),
  )
  t.equal(page.files[0]!.url, 'https://pypi.org/packages/requests-1.0.tar.gz')
})

t.test('reads yanked as PEP 691 does: truthy is yanked', async (t) => {
  const file = (yanked: unknown) => ({ filename: 'a-1.0.tar.gz', url: '/a', yanked })
  const yanks = [true, false, 'reason', '', null, 1].map(
    (value) => parse(doc([file(value)])).page.files[0]!.yanked,
  )
  t.strictSame(yanks, [true, undefined, 'reason', undefined, undefined, undefined])
})

t.test('reads core-metadata first, then the older dist-info-metadata keys (PEP 714)', async (t) => {
  const file = (fields: Record<string, unknown>) => ({
    filename: 'a-1.0.tar.gz',
    url: '/a',
    ...fields,
  })
  const read = (fields: Record<string, unknown>) =>
    parse(doc([file(fields)])).page.files[0]!.coreMetadata
  t.equal(read({ 'core-metadata': true }), true)
  t.strictSame(read({ 'dist-info-metadata': { SHA256: SHA.toUpperCase() } }), { sha256: SHA })
  t.strictSame(read({ 'data-dist-info-metadata': { sha256: SHA } }), { sha256: SHA })
  t.equal(read({ 'core-metadata': false, 'dist-info-metadata': true }), undefined, 'new key wins')
  t.equal(read({ 'core-metadata': {} }), undefined, 'an empty object is falsy')
  t.equal(read({ 'core-metadata': { sha256: 'zz' } }), undefined, 'malformed: not advertised')
  t.equal(read({ 'core-metadata': 'yes' }), undefined)
})

t.test('keeps PEP 700 fields only when well-formed', async (t) => {
  const file = (fields: Record<string, unknown>) => ({
    filename: 'a-1.0.tar.gz',
    url: '/a',
    ...fields,
  })
  const read = (fields: Record<string, unknown>) => parse(doc([file(fields)])).page.files[0]!
  t.equal(read({ size: 12 }).size, 12)
  t.equal(read({ size: -1 }).size, undefined)
  t.equal(read({ size: 1.5 }).size, undefined)
  t.equal(read({ size: '12' }).size, undefined)
  t.equal(read({ 'upload-time': '2024-05-29T15:37:47Z' }).uploadTime, '2024-05-29T15:37:47Z')
  t.equal(read({ 'upload-time': '2024-05-29 15:37:47' }).uploadTime, undefined)
  t.strictSame(parse(doc([], { versions: ['1.0', 1, '1.0', '2.0'] })).page.versions, ['1.0', '2.0'])
  t.equal(parse(doc([], { versions: 'x' })).page.versions, undefined)
})

t.test('ignores keys it does not know', async (t) => {
  const { page, dropped } = parse(
    doc([{ filename: 'a-1.0.tar.gz', url: '/a', hashes: {}, 'gpg-sig': false, provenance: null }], {
      'alternate-locations': [],
      _private: 1,
    }),
  )
  t.strictSame(dropped, [])
  t.strictSame(page.files[0], { filename: 'a-1.0.tar.gz', url: 'https://pypi.org/a', hashes: {} })
})

t.test('drops entries it cannot use, with a reason the caller can log', async (t) => {
  const { page, dropped } = parse(
    doc([
      'not an object',
      { filename: 'a-1.0.tar.gz' },
      { filename: 7, url: '/seven' },
      { filename: '../a-1.0.tar.gz', url: '/x' },
      { filename: 'a-1.0.tar.gz', url: '/a', hashes: { sha256: 'short' } },
      { filename: 'a-1.0.tar.gz', url: '/a', hashes: ['sha256'] },
      { filename: 'a-1.0.tar.gz', url: 'http://[::1' },
      { filename: 'a-1.0.tar.gz', url: '/a' },
      { filename: 'a-1.0.tar.gz', url: '/b' },
    ]),
  )
  t.strictSame(
    page.files.map((f) => f.url),
    ['https://pypi.org/a'],
  )
  t.strictSame(dropped, [
    { href: '', reason: 'invalid-entry' },
    { href: '', reason: 'invalid-entry' },
    { href: '/seven', reason: 'invalid-entry' },
    { href: '/x', filename: '../a-1.0.tar.gz', reason: 'invalid-filename' },
    { href: '/a', filename: 'a-1.0.tar.gz', reason: 'invalid-hash' },
    { href: '/a', filename: 'a-1.0.tar.gz', reason: 'invalid-hash' },
    { href: 'http://[::1', filename: 'a-1.0.tar.gz', reason: 'invalid-url' },
    { href: '/b', filename: 'a-1.0.tar.gz', reason: 'duplicate-filename' },
  ])
})

t.test('keeps javascript: URLs as URLs: the link allowlist is applied elsewhere', async (t) => {
  const { page } = parse(doc([{ filename: 'a-1.0.tar.gz', url: 'javascript:alert(1)' }]))
  t.equal(page.files[0]!.url, 'javascript:alert(1)')
})

t.test('refuses pages it cannot use at all', async (t) => {
  const cases: [string, string][] = [
    ['{"meta": {"api-version": "1.0"}, "files": [', 'not JSON'],
    ['[]', 'not a JSON object'],
    ['null', 'not a JSON object'],
    ['{"files": []}', 'no meta.api-version'],
    ['{"meta": {"api-version": 1.0}, "files": []}', 'no meta.api-version'],
    ['{"meta": {"api-version": "2.0"}, "files": []}', 'unsupported api-version 2.0'],
    ['{"meta": {"api-version": "1.0"}, "name": "urllib3", "files": []}', 'another project'],
    ['{"meta": {"api-version": "1.0"}, "name": 5, "files": []}', 'another project'],
    ['{"meta": {"api-version": "1.0"}, "files": {}}', 'files is not a list'],
  ]
  for (const [body, reason] of cases) {
    t.throws(() => parse(body), ProjectPageInvalidError, body)
    t.throws(() => parse(body), { code: 'PT_PYPI_PAGE_INVALID', reason: new RegExp(reason) })
  }
  t.equal(parse('{"meta": {"api-version": "1.3"}, "files": []}').apiVersion, '1.3')
  t.equal(
    parse('{"meta": {"api-version": "1.0"}, "name": "REQUESTS", "files": []}').page.name,
    'requests',
  )
})
