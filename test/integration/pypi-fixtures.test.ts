/**
 * The PyPI-side fixtures against a real pip (Debian's, /usr/bin/python3 -m pip)
 * before pullthrough is in the path: the built distributions install, both
 * upstream shapes resolve `app` and its dependency, pip skips the yanked and the
 * Python-3.99-only versions, and the servers' protocol details and fault hooks
 * do what the tests built on them expect.
 */
import { createHash } from 'node:crypto'
import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { request } from 'undici'
import { tempDir } from '../helpers/config.ts'
import {
  normalizeName,
  pip,
  pypiPackages,
  YANKED_REASON,
  type PythonRun,
} from '../helpers/pypi-packages.ts'
import {
  SIMPLE_HTML,
  SIMPLE_JSON,
  startMirrorUpstream,
  startPypiUpstream,
  type PypiUpstream,
} from '../helpers/pypi-upstream.ts'
import { get } from '../helpers/http.ts'

/** Flags for every pip run: fail fast instead of pip's default five retries with backoff. */
const PIP_FLAGS = ['--retries', '0', '--timeout', '10', '--no-input', '--progress-bar', 'off']

function sha256(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex')
}

/** `pip install --target` into a fresh dir; reports how long pip took. */
async function pipInstall(t: Test, index: string, args: readonly string[]) {
  const target = await tempDir(t, 'pt-pip-target-')
  const run = await pip(t, [
    'install',
    ...PIP_FLAGS,
    '--no-build-isolation',
    '--index-url',
    index,
    '--target',
    target,
    ...args,
  ])
  t.comment(`pip install ${args.join(' ')}: ${run.durationMs} ms`)
  return { ...run, target }
}

/** The `<name>-<version>` of each .dist-info pip installed into `target`. */
async function installed(target: string): Promise<string[]> {
  const names = await readdir(target)
  return names
    .filter((n) => n.endsWith('.dist-info'))
    .map((n) => n.slice(0, -'.dist-info'.length))
    .sort()
}

function succeeded(t: Test, run: PythonRun): void {
  t.equal(run.code, 0, 'pip exits 0', { stdout: run.stdout, stderr: run.stderr })
}

t.test('the fixture set holds real distributions described by their bytes', async (t) => {
  const set = await pypiPackages()
  t.same(
    set.projects.map((p) => [p.name, p.normalized]),
    [
      ['lib', 'lib'],
      ['app', 'app'],
      ['Fancy_Name.Pkg', 'fancy-name-pkg'],
      ['setuptools', 'setuptools'],
    ],
  )
  for (const file of set.projects.flatMap((p) => p.files)) {
    const bytes = await readFile(file.path)
    t.equal(sha256(bytes), file.sha256, `${file.filename} hashes to its sha256`)
    t.equal(bytes.length, file.size)
    if (file.kind === 'sdist') {
      t.equal(file.metadata, undefined)
      continue
    }
    const metadata = await readFile(file.metadata!.path)
    t.equal(sha256(metadata), file.metadata!.sha256)
    const text = metadata.toString()
    const name = /^Metadata-Version: .*\nName: (.*)\n/.exec(text)?.[1]
    t.equal(normalizeName(name ?? ''), set.project(file.project).normalized)
    t.match(text, `\nVersion: ${file.version}\n`)
    if (file.requiresPython) t.match(text, `\nRequires-Python: ${file.requiresPython}\n`)
  }
  t.same(
    set.project('lib').files.map((f) => [f.filename, f.requiresPython, f.yanked]),
    [
      ['lib-1.0-py3-none-any.whl', undefined, undefined],
      ['lib-1.0.tar.gz', undefined, undefined],
      ['lib-1.1-py3-none-any.whl', undefined, undefined],
      ['lib-2.0-py3-none-any.whl', undefined, YANKED_REASON],
      ['lib-3.0-py3-none-any.whl', '>=3.99', undefined],
    ],
  )
  t.match(
    await readFile(set.file('app-1.0-py3-none-any.whl').metadata!.path, 'utf8'),
    '\nRequires-Dist: lib (>=1.0)\n',
  )
  t.equal(set.project('FANCY.name-pkg'), set.project('Fancy_Name.Pkg'), 'lookup by any spelling')
  t.equal(set.systemWheel?.generated, false, 'a wheel Debian ships is in the set')
  t.match(set.systemWheel?.filename, /^setuptools-[\d.]+-py3-none-any\.whl$/)
})

t.test('pip installs app and lib from the PyPI-like index and its files host', async (t) => {
  const a = await startPypiUpstream(t)
  const run = await pipInstall(t, a.index, ['app'])
  succeeded(t, run)
  t.same(await installed(run.target), ['app-1.0', 'lib-1.1'], 'lib 2.0 is yanked, 3.0 needs 3.99')
  t.match(await readFile(join(run.target, 'lib.py'), 'utf8'), 'VERSION = "1.1"')

  const page = a.requestsTo('/simple/app/')[0]
  t.ok(page, 'pip asked the index for the project page')
  t.comment(`pip sends Accept: ${String(page?.headers.accept)}`)
  t.match(page?.headers.accept, SIMPLE_JSON, 'pip asks for PEP 691 JSON first')
  t.equal(a.count('/packages/*'), 0, 'the index host serves no files')
  const lib = a.packages.file('lib-1.1-py3-none-any.whl')
  const app = a.packages.file('app-1.0-py3-none-any.whl')
  t.ok(a.files.count(a.fileUrl(lib)) >= 1, 'the wheel came from the files host')
  t.ok(a.files.count(a.fileUrl(app)) >= 1)
  // pip 23.0 reads PEP 658 from JSON only under `dist-info-metadata`, which pypi.org (and
  // this fixture) never send (PEP 714): it downloads whole wheels. Newer pips read core-metadata.
  const pep658 = a.files.requests.filter((r) => r.url.endsWith('.metadata')).map((r) => r.url)
  t.comment(`PEP 658 metadata pip fetched from JSON links: ${pep658.join(', ') || 'none'}`)
  const expected = [a.metadataUrl(app), a.metadataUrl(lib)].map((u) => new URL(u).pathname)
  t.ok(
    pep658.every((url) => expected.includes(url)),
    'metadata requests, if any, are for the chosen wheels',
  )
})

t.test('pip installs app and lib from the mirror-like index with relative links', async (t) => {
  const b = await startMirrorUpstream(t)
  const run = await pipInstall(t, b.index, ['app'])
  succeeded(t, run)
  t.same(await installed(run.target), ['app-1.0', 'lib-1.1'])
  t.equal(b.files.origin, b.origin, 'the mirror serves its own files')
  const lib = b.packages.file('lib-1.1-py3-none-any.whl')
  const app = b.packages.file('app-1.0-py3-none-any.whl')
  // pip reads data-dist-info-metadata from HTML (PEP 658, pip >= 22.3) ...
  t.equal(b.count(b.metadataUrl(app)), 1, 'pip fetched the PEP 658 metadata')
  t.equal(b.count(b.metadataUrl(lib)), 1)
  // ... and pip 23.0 then downloads each wheel twice (pypa/pip#11847).
  t.comment(`downloads of ${lib.filename}: ${b.count(b.fileUrl(lib))}`)
  t.ok(b.count(b.fileUrl(lib)) >= 1, 'the wheel came from the mirror itself')
  const page = await get(b.pageUrl('lib'), { headers: { accept: SIMPLE_JSON } })
  t.equal(page.headers['content-type'], 'text/html', 'the JSON Accept gets HTML')
  t.equal(page.headers.etag, undefined)
  t.match(page.body.toString(), `href="../../packages/${lib.sha256.slice(0, 2)}/`)
})

t.test('pip installs the yanked version only when it is pinned, with its reason', async (t) => {
  for (const start of [startPypiUpstream, startMirrorUpstream]) {
    const upstream: PypiUpstream = await start(t)
    const run = await pipInstall(t, upstream.index, ['lib==2.0'])
    succeeded(t, run)
    t.same(await installed(run.target), ['lib-2.0'])
    // pip prints the reason as it read it: the JSON and HTML escaping both round-trip.
    t.match(run.stderr, `Reason for being yanked: ${YANKED_REASON}`)
  }
})

t.test('pip never picks the version whose Requires-Python excludes it', async (t) => {
  const a = await startPypiUpstream(t)
  const run = await pipInstall(t, a.index, ['lib==3.0'])
  t.not(run.code, 0)
  t.match(run.stderr, 'No matching distribution found for lib==3.0')
  t.match(run.stderr, /3\.0 Requires-Python >=3\.99/)
  const b = await startMirrorUpstream(t)
  const mirrored = await pipInstall(t, b.index, ['lib>=1.1'])
  succeeded(t, mirrored)
  t.same(await installed(mirrored.target), ['lib-1.1'], 'data-requires-python is honoured')
})

t.test('a non-normalized project URL redirects to the normalized one', async (t) => {
  const a = await startPypiUpstream(t)
  const b = await startMirrorUpstream(t)
  for (const upstream of [a, b]) {
    for (const [path, location] of [
      ['/simple/Fancy_Name.Pkg/', '/simple/fancy-name-pkg/'],
      ['/simple/fancy-name-pkg', '/simple/fancy-name-pkg/'],
      ['/simple/LIB/', '/simple/lib/'],
      ['/simple', '/simple/'],
    ] as const) {
      const res = await get(`${upstream.origin}${path}`)
      t.equal(res.status, 301, path)
      t.equal(res.headers.location, location)
    }
    t.equal((await get(`${upstream.origin}/simple/no-such-project/`)).status, 404)
  }
  const run = await pipInstall(t, a.index, ['Fancy.Name_PKG'])
  succeeded(t, run)
  t.same(await installed(run.target), ['Fancy_Name.Pkg-0.1'])
  t.equal(a.count('/simple/fancy-name-pkg/'), 1, 'pip itself asks for the normalized name')
})

t.test('pip follows the mirror redirecting project pages to another index', async (t) => {
  const a = await startPypiUpstream(t)
  const b = await startMirrorUpstream(t, { redirectPagesTo: a.index })
  const res = await get(b.pageUrl('app'))
  t.equal(res.status, 302)
  t.equal(res.headers.location, a.pageUrl('app'))
  const run = await pipInstall(t, b.index, ['app'])
  succeeded(t, run)
  t.same(await installed(run.target), ['app-1.0', 'lib-1.1'])
  t.equal(a.files.count(a.fileUrl('app-1.0-py3-none-any.whl')), 1, 'files came via the target')
  b.redirectPagesTo(undefined)
  t.equal((await get(b.pageUrl('app'))).status, 200)
})

t.test('pip builds and installs an sdist offline', async (t) => {
  const a = await startPypiUpstream(t)
  const run = await pipInstall(t, a.index, ['--no-binary', 'lib', 'lib==1.0'])
  succeeded(t, run)
  t.same(await installed(run.target), ['lib-1.0'])
  t.equal(a.files.count(a.fileUrl('lib-1.0.tar.gz')), 1)
})

t.test('pip downloads the wheel Debian ships byte for byte', async (t) => {
  const a = await startPypiUpstream(t)
  const wheel = a.packages.systemWheel!
  const dest = await tempDir(t, 'pt-pip-download-')
  const spec = `${wheel.project}==${wheel.version}`
  const args = ['download', ...PIP_FLAGS, '--no-deps', '--index-url', a.index, '-d', dest, spec]
  const run = await pip(t, args)
  t.comment(`pip download ${spec}: ${run.durationMs} ms`)
  succeeded(t, run)
  t.equal(sha256(await readFile(join(dest, wheel.filename))), wheel.sha256)
})

t.test('pip rejects a file whose bytes do not match the index sha256', async (t) => {
  const a = await startPypiUpstream(t)
  a.files.corrupt(a.fileUrl('lib-1.1-py3-none-any.whl'))
  const run = await pipInstall(t, a.index, ['lib'])
  t.not(run.code, 0)
  t.match(run.stderr, 'THESE PACKAGES DO NOT MATCH THE HASHES')
})

t.test('the PyPI-like index negotiates PEP 691 and revalidates by ETag', async (t) => {
  const a = await startPypiUpstream(t)
  const url = a.pageUrl('lib')
  const cases: [string | undefined, number, string | undefined][] = [
    [SIMPLE_JSON, 200, SIMPLE_JSON],
    ['application/vnd.pypi.simple.latest+json', 200, SIMPLE_JSON],
    [`${SIMPLE_JSON};q=0.1, ${SIMPLE_HTML}`, 200, SIMPLE_HTML],
    ['text/html', 200, 'text/html; charset=utf-8'],
    [undefined, 200, 'text/html; charset=utf-8'],
    ['application/json', 406, undefined],
  ]
  for (const [accept, status, type] of cases) {
    const res = await get(url, { headers: accept === undefined ? {} : { accept } })
    t.equal(res.status, status, String(accept))
    if (type) t.equal(res.headers['content-type'], type)
  }

  const json = await get(url, { headers: { accept: SIMPLE_JSON } })
  const page = JSON.parse(json.body.toString()) as {
    meta: Record<string, unknown>
    name: string
    versions: string[]
    files: Record<string, unknown>[]
  }
  t.same(page.meta, { 'api-version': '1.1', '_last-serial': 1 })
  t.equal(page.name, 'lib')
  t.same(page.versions, ['1.0', '1.1', '2.0', '3.0'])
  const yanked = a.packages.file('lib-2.0-py3-none-any.whl')
  t.same(page.files[3], {
    filename: yanked.filename,
    url: a.fileUrl(yanked),
    hashes: { sha256: yanked.sha256 },
    'requires-python': null,
    size: yanked.size,
    'upload-time': yanked.uploadTime,
    yanked: YANKED_REASON,
    'core-metadata': { sha256: yanked.metadata!.sha256 },
    'data-dist-info-metadata': { sha256: yanked.metadata!.sha256 },
  })
  t.equal(page.files[1]?.['core-metadata'], false, 'sdists have no metadata file')

  const html = (await get(url, { headers: { accept: 'text/html' } })).body.toString()
  t.match(html, '<meta name="pypi:repository-version" content="1.1">')
  t.match(
    html,
    `<a href="${a.fileUrl(yanked)}#sha256=${yanked.sha256}" ` +
      `data-yanked="broken build: &lt;don&#39;t&gt; use &quot;2.0&quot; &amp; upgrade" ` +
      `data-dist-info-metadata="sha256=${yanked.metadata!.sha256}" ` +
      `data-core-metadata="sha256=${yanked.metadata!.sha256}">lib-2.0-py3-none-any.whl</a>`,
  )
  t.match(html, 'data-requires-python="&gt;=3.99"')

  const etag = json.headers.etag as string
  t.match(etag, /^"[0-9a-f]{32}"$/)
  t.not(
    (await get(url, { headers: { accept: 'text/html' } })).headers.etag,
    etag,
    'one ETag per representation',
  )
  const revalidated = await get(url, { headers: { accept: SIMPLE_JSON, 'if-none-match': etag } })
  t.equal(revalidated.status, 304)
  t.equal(revalidated.body.length, 0)
  a.setFiles((f) => f.version !== '3.0')
  const changed = await get(url, { headers: { accept: SIMPLE_JSON, 'if-none-match': etag } })
  t.equal(changed.status, 200, 'a changed listing is a new representation')
  t.same((JSON.parse(changed.body.toString()) as { versions: string[] }).versions, [
    '1.0',
    '1.1',
    '2.0',
  ])
  t.equal(changed.headers['x-pypi-last-serial'], '2')

  const list = JSON.parse(
    (await get(a.index, { headers: { accept: SIMPLE_JSON } })).body.toString(),
  ) as {
    projects: { name: string }[]
  }
  t.same(
    list.projects.map((p) => p.name),
    ['lib', 'app', 'Fancy_Name.Pkg', 'setuptools'],
  )
  t.match(
    (await get(a.index)).body.toString(),
    '<a href="/simple/fancy-name-pkg/">Fancy_Name.Pkg</a>',
  )
})

t.test('files hosts serve ranges and metadata files', async (t) => {
  const a = await startPypiUpstream(t)
  const b = await startMirrorUpstream(t)
  const wheel = a.packages.systemWheel!
  const whole = await readFile(wheel.path)
  for (const url of [a.fileUrl(wheel), b.fileUrl(wheel)]) {
    const full = await get(url)
    t.equal(full.status, 200)
    t.equal(sha256(full.body), wheel.sha256)
    t.equal(full.headers['accept-ranges'], 'bytes')
    const tail = await get(url, { headers: { range: 'bytes=1000-' } })
    t.equal(tail.status, 206)
    t.equal(tail.headers['content-range'], `bytes 1000-${wheel.size - 1}/${wheel.size}`)
    t.same(tail.body, whole.subarray(1000))
    const mid = await get(url, { headers: { range: 'bytes=10-19' } })
    t.same(mid.body, whole.subarray(10, 20))
    const suffix = await get(url, { headers: { range: 'bytes=-5' } })
    t.same(suffix.body, whole.subarray(-5))
    const beyond = await get(url, { headers: { range: `bytes=${wheel.size}-` } })
    t.equal(beyond.status, 416)
    t.equal(beyond.headers['content-range'], `bytes */${wheel.size}`)
    const head = await get(url, { method: 'HEAD' })
    t.equal(head.headers['content-length'], String(wheel.size))
    t.equal(head.body.length, 0)
    const metadata = await get(`${url}.metadata`)
    t.equal(sha256(metadata.body), wheel.metadata!.sha256)
  }
  t.equal(a.files.requestsTo(a.fileUrl(wheel))[1]?.headers.range, 'bytes=1000-')
  const bare = await startPypiUpstream(t, { coreMetadata: false })
  t.equal((await get(bare.metadataUrl(wheel))).status, 404)
  t.notMatch((await get(bare.pageUrl('lib'))).body.toString(), 'metadata')
})

t.test('fault hooks: status, cut, corrupt, times, stop and start', async (t) => {
  const a = await startPypiUpstream(t)
  const wheel = a.packages.file('lib-1.1-py3-none-any.whl')
  const fileUrl = a.fileUrl(wheel)
  t.throws(() => a.fail(fileUrl), /is not on this server/, 'a file URL is not the index host')

  a.fail('/simple/lib/', 502, { times: 1 })
  t.equal((await get(a.pageUrl('lib'))).status, 502)
  t.equal((await get(a.pageUrl('lib'))).status, 200, 'times: 1 fails once')
  a.notFound('/simple/*')
  t.equal((await get(a.pageUrl('app'))).status, 404, 'a prefix takes every page')
  a.clearFaults()
  t.equal((await get(a.pageUrl('app'))).status, 200)

  a.files.corrupt(fileUrl)
  const corrupt = await get(fileUrl)
  t.equal(corrupt.body.length, wheel.size)
  t.not(sha256(corrupt.body), wheel.sha256)
  a.files.clearFaults()

  a.files.cut(fileUrl, 100)
  const res = await request(fileUrl)
  t.equal(res.headers['content-length'], String(wheel.size), 'the head promises the whole body')
  const received: Buffer[] = []
  const error = await (async () => {
    try {
      for await (const chunk of res.body) received.push(chunk as Buffer)
    } catch (e) {
      return e as Error
    }
    return undefined
  })()
  t.ok(error, 'the body ends early with an error')
  t.equal(Buffer.concat(received).length, 100)
  a.files.clearFaults()

  const port = a.port
  await a.stop()
  await t.rejects(request(a.pageUrl('lib')), { code: 'ECONNREFUSED' })
  await a.start()
  t.equal(a.port, port)
  t.equal((await get(a.pageUrl('lib'))).status, 200, 'back on the same port')
  t.equal(a.count(a.pageUrl('lib')), 3, 'a refused connection is no request')
})
