/**
 * The PyPI routes against test-owned indexes of real distributions: what pip
 * and uv see (pages, negotiation, redirects, rewritten links), freshness,
 * stale serving, the host allowlist, and bad input.
 */
import t, { type Test } from 'tap'
import { request } from 'undici'
import { digestOf } from '../../src/storage/digest.ts'
import { startApp, type TestApp } from '../helpers/app.ts'
import { fakeUpstream } from '../helpers/fake-upstream.ts'
import { metricValue } from '../helpers/pool.ts'
import { YANKED_REASON } from '../helpers/pypi-packages.ts'
import {
  SIMPLE_JSON,
  startMirrorUpstream,
  startPypiUpstream,
  type PypiUpstream,
} from '../helpers/pypi-upstream.ts'
import { get } from '../helpers/http.ts'

const INDEX_TTL_MS = 60_000

interface Setup {
  readonly app: TestApp
  readonly upstream: PypiUpstream
  readonly clock: { now: number }
}

async function setup(
  t: Test,
  options: { fileHosts?: boolean; extra?: string } = {},
): Promise<Setup> {
  const upstream = await startPypiUpstream(t)
  const clock = { now: Date.now() }
  const hosts = options.fileHosts === false ? '[]' : `["${upstream.files.origin}"]`
  const app = await startApp(t, {
    yaml: `pypi:
  indexes:
    - name: pypi
      default: true
      indexTTL: ${INDEX_TTL_MS}ms
      upstreams: [{ url: "${upstream.index}" }]
      fileHosts: ${hosts}
      retry: { attempts: 1 }
${options.extra ?? ''}`,
    deps: { now: () => clock.now },
  })
  return { app, upstream, clock }
}

interface JsonPage {
  name: string
  meta: Record<string, unknown>
  files: { filename: string; url: string; hashes: Record<string, string>; yanked?: unknown }[]
}

t.test(
  'a project page is served as HTML or PEP 691 JSON, links rewritten to pullthrough',
  async (t) => {
    const { app, upstream } = await setup(t)
    const lib = upstream.packages.project('lib')
    const html = await get(`${app.url}/simple/lib/`)
    t.equal(html.status, 200)
    t.match(html.headers['content-type'], /^text\/html/)
    t.match(html.text, '<meta name="pypi:repository-version" content="1.1">')
    for (const file of lib.files) {
      t.match(
        html.text,
        `/pypi/pypi/files/lib/${file.sha256}/${file.filename}#sha256=${file.sha256}`,
      )
    }
    t.notMatch(html.text, upstream.files.origin, 'no link leads around pullthrough')
    t.match(
      html.text,
      'data-yanked="broken build: &lt;don&#39;t&gt; use &quot;2.0&quot; &amp; upgrade"',
    )
    t.match(html.text, 'data-requires-python="&gt;=3.99"')

    const json = await get(`${app.url}/simple/lib/`, { headers: { accept: SIMPLE_JSON } })
    t.match(json.headers['content-type'], /^application\/vnd\.pypi\.simple\.v1\+json/)
    const page = JSON.parse(json.text) as JsonPage
    t.equal(page.name, 'lib')
    t.same(
      page.files.map((f) => f.filename),
      lib.files.map((f) => f.filename),
    )
    t.ok(page.files.every((f) => f.url.startsWith('/pypi/pypi/files/lib/')))
    t.equal(page.files.find((f) => f.filename.includes('-2.0'))?.yanked, YANKED_REASON)
    t.equal(upstream.count('/simple/lib/'), 1, 'both answers came from one upstream fetch')
  },
)

t.test('Accept q-values choose the format, and nothing acceptable is a 406', async (t) => {
  const { app } = await setup(t)
  const html = await get(`${app.url}/simple/lib/`, {
    headers: {
      accept: `${SIMPLE_JSON};q=0.1, application/vnd.pypi.simple.v1+html;q=0.9`,
    },
  })
  t.equal(html.headers['content-type'], 'application/vnd.pypi.simple.v1+html')
  const none = await get(`${app.url}/simple/lib/`, { headers: { accept: 'image/png' } })
  t.equal(none.status, 406)
})

t.test(
  'a name that is not normalized, or lacks its slash, redirects to the normalized URL',
  async (t) => {
    const { app } = await setup(t)
    for (const [path, location] of [
      ['/simple/Fancy_Name.Pkg/', '/simple/fancy-name-pkg/'],
      ['/simple/fancy-name-pkg', '/simple/fancy-name-pkg/'],
      ['/pypi/pypi/simple/LIB/', '/pypi/pypi/simple/lib/'],
    ] as const) {
      const res = await request(`${app.url}${path}`)
      await res.body.dump()
      t.equal(res.statusCode, 301, path)
      t.equal(res.headers.location, location, path)
    }
  },
)

t.test('a percent-encoded name redirects to the normalized route of its index', async (t) => {
  const { app } = await setup(t, {
    extra: `    - { name: other, upstreams: [{ url: "http://127.0.0.1:9/simple/" }] }\n`,
  })
  for (const [path, location] of [
    ['/simple/%46oo/', '/simple/foo/'],
    ['/simple/%46oo', '/simple/foo/'],
    ['/simple/Fancy%5FName%2EPkg/', '/simple/fancy-name-pkg/'],
    ['/pypi/pypi/simple/%4Cib/', '/pypi/pypi/simple/lib/'],
    ['/pypi/other/simple/%46oo', '/pypi/other/simple/foo/'],
  ] as const) {
    const res = await request(`${app.url}${path}`)
    await res.body.dump()
    t.equal(res.statusCode, 301, path)
    t.equal(res.headers.location, location, path)
  }
  const redirect = await request(`${app.url}/simple/%4Cib/`)
  await redirect.body.dump()
  const followed = await get(`${app.url}${String(redirect.headers.location)}`)
  t.equal(followed.status, 200, 'the Location serves the page')
})

t.test('files and PEP 658 metadata are served by the sha256 the index gave', async (t) => {
  const { app, upstream } = await setup(t)
  const wheel = upstream.packages.project('lib').files.find((f) => f.kind === 'wheel')!
  const base = `${app.url}/pypi/pypi/files/lib/${wheel.sha256}/${wheel.filename}`
  const file = await get(base)
  t.equal(file.status, 200)
  t.equal(digestOf(file.body), `sha256:${wheel.sha256}`)
  t.equal(file.headers['content-length'], String(wheel.size))
  const metadata = await get(`${base}.metadata`)
  t.equal(metadata.status, 200)
  t.equal(digestOf(metadata.body), `sha256:${wheel.metadata?.sha256 ?? ''}`)
  await app.app.services.cache.settled()
  await get(base)
  t.equal(
    upstream.files.count(new URL(upstream.fileUrl(wheel)).pathname),
    1,
    'the second GET was a hit',
  )
  const pulls = app.logs.lines.filter((l) => l.msg === 'pull' && l.file === wheel.filename)
  t.match(pulls, [{ cache: 'miss', index: 'pypi', project: 'lib' }, { cache: 'hit' }])
})

t.test('links to hosts outside the allowlist are dropped and never fetched', async (t) => {
  const { app, upstream } = await setup(t, { fileHosts: false })
  const page = await get(`${app.url}/simple/lib/`, { headers: { accept: SIMPLE_JSON } })
  t.same((JSON.parse(page.text) as JsonPage).files, [], 'every file was on the other host')
  const wheel = upstream.packages.project('lib').files[0]!
  const file = await get(`${app.url}/pypi/pypi/files/lib/${wheel.sha256}/${wheel.filename}`)
  t.equal(file.status, 404)
  t.equal(upstream.files.count(), 0)
  t.equal(
    await metricValue(app.app.deps.metrics.indexLinksDropped, { reason: 'host-not-allowed' }),
    upstream.packages.project('lib').files.length,
  )
})

t.test('after indexTTL the page is revalidated with If-None-Match; 304 keeps it', async (t) => {
  const { app, upstream, clock } = await setup(t)
  await get(`${app.url}/simple/lib/`)
  await get(`${app.url}/simple/lib/`)
  t.equal(upstream.count('/simple/lib/'), 1, 'fresh within indexTTL')
  clock.now += INDEX_TTL_MS + 1
  const again = await get(`${app.url}/simple/lib/`)
  t.equal(again.status, 200)
  const asked = upstream.requestsTo('/simple/lib/')
  t.equal(asked.length, 2)
  t.ok(asked[1]?.headers['if-none-match'], 'revalidated with the ETag')
  const pulls = app.logs.lines.filter((l) => l.msg === 'pull').map((l) => l.cache)
  t.same(pulls, ['miss', 'hit', 'revalidated'])
})

t.test(
  'a warm page near the end of its indexTTL is served at once and renewed behind',
  async (t) => {
    const { app, upstream, clock } = await setup(t)
    await get(`${app.url}/simple/lib/`)
    clock.now += INDEX_TTL_MS * 0.5
    await get(`${app.url}/simple/lib/`)
    t.equal(upstream.count('/simple/lib/'), 1, 'half way through indexTTL: answered from memory')
    clock.now += INDEX_TTL_MS * 0.4
    const late = await get(`${app.url}/simple/lib/`)
    t.equal(late.status, 200)
    t.match(late.text, 'lib-1.0')
    // Past REFRESH_AHEAD_FRACTION of the TTL a hit also asks the upstream, in the background.
    const deadline = Date.now() + 5_000
    while (upstream.count('/simple/lib/') < 2 && Date.now() < deadline)
      await new Promise((resolve) => setTimeout(resolve, 10))
    t.equal(upstream.count('/simple/lib/'), 2, 'renewed ahead of its TTL')
    t.same(
      app.logs.lines.filter((l) => l.msg === 'pull').map((l) => l.cache),
      ['miss', 'hit', 'hit'],
    )
  },
)

t.test('a new release upstream appears after indexTTL', async (t) => {
  const { app, upstream, clock } = await setup(t)
  upstream.setFiles((f) => f.version !== '1.1')
  const before = await get(`${app.url}/simple/lib/`)
  t.notMatch(before.text, 'lib-1.1')
  upstream.setFiles(undefined)
  clock.now += INDEX_TTL_MS + 1
  const after = await get(`${app.url}/simple/lib/`)
  t.match(after.text, 'lib-1.1')
})

t.test('every upstream down: the cached page is served stale; others answer 503', async (t) => {
  const { app, upstream, clock } = await setup(t)
  await get(`${app.url}/simple/lib/`)
  await upstream.stop()
  clock.now += INDEX_TTL_MS + 1
  const stale = await get(`${app.url}/simple/lib/`)
  t.equal(stale.status, 200)
  t.match(stale.text, 'lib-1.0')
  const missing = await get(`${app.url}/simple/app/`)
  t.equal(missing.status, 503)
  t.match(missing.text, 'no upstream of index pypi could answer')
  t.notMatch(missing.text, '127.0.0.1')
  t.match(
    app.logs.lines.filter((l) => l.msg === 'pull').map((l) => l.cache),
    ['miss', 'stale'],
  )
})

t.test('a project the upstream lacks is 404, remembered briefly', async (t) => {
  const { app, upstream } = await setup(t)
  for (let i = 0; i < 3; i++) {
    const res = await get(`${app.url}/simple/no-such-project/`)
    t.equal(res.status, 404)
  }
  t.equal(upstream.count('/simple/no-such-project/'), 1)
})

t.test('bad names and files are refused before any upstream or disk is touched', async (t) => {
  const { app, upstream } = await setup(t)
  const sha = 'a'.repeat(64)
  for (const path of [
    '/simple/..%2F..%2Fetc%2Fpasswd/',
    '/simple/-bad-/',
    `/simple/${'a'.repeat(300)}/`,
    '/pypi/nope/simple/lib/',
    `/pypi/pypi/files/lib/${sha}/..%2F..%2Fetc%2Fpasswd`,
    `/pypi/pypi/files/lib/${sha}/lib-1.0.exe`,
    `/pypi/pypi/files/lib/not-a-hash/lib-1.0.tar.gz`,
    `/pypi/pypi/files/LIB/${sha}/lib-1.0.tar.gz`,
    `/pypi/pypi/files/..%2F/${sha}/lib-1.0.tar.gz`,
  ]) {
    const res = await get(`${app.url}${path}`)
    t.ok(res.status >= 400 && res.status < 500, `${path}: ${res.status}`)
  }
  t.equal(upstream.count() + upstream.files.count(), 0, 'no upstream was asked')
})

t.test('a named index and a mirror that redirects (as USTC does) work', async (t) => {
  const target = await startMirrorUpstream(t)
  const redirecting = await startMirrorUpstream(t, { redirectPagesTo: target.index })
  const { app } = await setup(t, {
    extra: `    - name: mirror
      upstreams: [{ url: "${redirecting.index}" }]
      fileHosts: ["${target.origin}"]
`,
  })
  const page = await get(`${app.url}/pypi/mirror/simple/lib/`)
  t.equal(page.status, 200)
  t.match(page.text, '/pypi/mirror/files/lib/')
  t.equal(target.count('/simple/lib/'), 1, 'the redirect was followed')
})

t.test(
  'a file whose listed host fails is fetched from another upstream listing the same file',
  async (t) => {
    const upstream = await startPypiUpstream(t)
    const mirror = await startMirrorUpstream(t)
    const app = await startApp(t, {
      yaml: `pypi:
  indexes:
    - name: pypi
      default: true
      upstreams: [{ url: "${upstream.index}" }, { url: "${mirror.index}" }]
      fileHosts: ["${upstream.files.origin}"]
      retry: { attempts: 1 }
`,
    })
    const wheel = upstream.packages.project('app').files.find((f) => f.kind === 'wheel')!
    upstream.files.fail(upstream.fileUrl(wheel), 503)
    const res = await get(`${app.url}/pypi/pypi/files/app/${wheel.sha256}/${wheel.filename}`)
    t.equal(res.status, 200)
    t.equal(digestOf(res.body), `sha256:${wheel.sha256}`)
    t.equal(mirror.count(new URL(mirror.fileUrl(wheel)).pathname), 1, 'the mirror sent it')
    t.match(app.logs.raw.join('\n'), /file served from another mirror/)
  },
)

t.test('a corrupt file is never completed for the client, and not cached', async (t) => {
  const { app, upstream } = await setup(t)
  const wheel = upstream.packages.project('lib').files.find((f) => f.kind === 'wheel')!
  upstream.files.corrupt(upstream.fileUrl(wheel))
  const url = `${app.url}/pypi/pypi/files/lib/${wheel.sha256}/${wheel.filename}`
  const outcome = await request(url).then(
    async (res) => {
      try {
        return { status: res.statusCode, body: Buffer.from(await res.body.arrayBuffer()) }
      } catch {
        return { status: res.statusCode, body: undefined }
      }
    },
    () => ({ status: 0, body: undefined }),
  )
  t.notOk(
    outcome.status === 200 && outcome.body !== undefined,
    `no complete 200 body (status ${outcome.status}, ${outcome.body ? 'a body' : 'cut'})`,
  )
  upstream.files.clearFaults()
  await app.app.services.cache.settled()
  const good = await get(url)
  t.equal(good.status, 200)
  t.equal(digestOf(good.body), `sha256:${wheel.sha256}`)
  t.equal(await metricValue(app.app.deps.metrics.digestMismatches, { pool: 'pypi' }), 1)
})

t.test('the legacy JSON API is proxied with file URLs on pullthrough', async (t) => {
  const { app, upstream } = await setup(t)
  const res = await get(`${app.url}/pypi/LIB/json`)
  t.equal(res.status, 200)
  const doc = JSON.parse(res.text) as {
    info: { name: string }
    urls: { url: string; filename: string }[]
    releases: Record<string, { url: string; filename: string }[]>
  }
  t.equal(doc.info.name, 'lib')
  const all = Object.values(doc.releases).flat()
  t.equal(all.length, upstream.packages.project('lib').files.length)
  // Relative to the document's URL (no server.publicUrl here), never built from the Host header.
  const resolved = (f: { url: string }) => new URL(f.url, `${app.url}/pypi/LIB/json`).href
  t.ok(
    all.every((f) => !/^[a-z]+:/.test(f.url)),
    'relative URLs',
  )
  t.ok(all.every((f) => resolved(f).startsWith(`${app.url}/pypi/pypi/files/lib/`)))
  t.ok(doc.urls.length > 0)
  // The rewritten URL serves the file.
  const first = all[0]!
  const file = await get(resolved(first))
  t.equal(file.status, 200)
  t.equal(digestOf(file.body), `sha256:${upstream.packages.file(first.filename).sha256}`)
  t.equal((await get(`${app.url}/pypi/no-such/json`)).status, 404)
})

t.test(
  'the project list streams from the upstream, is cached, and links stay on pullthrough',
  async (t) => {
    const { app, upstream, clock } = await setup(t)
    const html = await get(`${app.url}/simple/`)
    t.equal(html.status, 200)
    t.match(html.headers['content-type'], /html/)
    t.match(html.text, 'href="fancy-name-pkg/"')
    t.notMatch(html.text, 'href="/simple/', 'links are relative, so they work under any index URL')
    const json = await get(`${app.url}/pypi/pypi/simple/`, { headers: { accept: SIMPLE_JSON } })
    t.match(json.headers['content-type'], /json/)
    t.match(JSON.parse(json.text), { projects: [{ name: 'lib' }] })
    // The copy is committed just after the last byte went out.
    const metadata = app.app.deps.metadata
    for (let i = 0; i < 100 && !(await metadata.getDocument('pypi', 'list:names')); i++)
      await new Promise((resolve) => setTimeout(resolve, 20))
    await get(`${app.url}/simple/`)
    t.equal(upstream.count('/simple/'), 1, 'one upstream fetch serves both formats; repeats hit')
    await upstream.stop()
    clock.now += 2 * 60 * 60_000
    const stale = await get(`${app.url}/simple/`)
    t.equal(stale.status, 200)
    t.match(stale.text, 'href="lib/"')
  },
)

t.test('a file the index lists without a sha256 is streamed, kept, and flagged', async (t) => {
  const wheel = Buffer.from('not really a wheel, but bytes all the same')
  // Fault injection: an index page that gives no hash for its file.
  const bare = await fakeUpstream(t, (req, res) => {
    if (req.url === '/simple/nohash/') {
      res.writeHead(200, { 'content-type': 'text/html' })
      res.end('<a href="/files/nohash-1.0-py3-none-any.whl">nohash-1.0-py3-none-any.whl</a>')
    } else if (req.url === '/files/nohash-1.0-py3-none-any.whl') {
      res.writeHead(200, { 'content-type': 'application/octet-stream' })
      res.end(wheel)
    } else res.writeHead(404).end()
  })
  const app = await startApp(t, {
    yaml: `pypi: { indexes: [{ name: pypi, default: true, upstreams: [{ url: "${bare.url}/simple/" }] }] }\n`,
  })
  const page = await get(`${app.url}/simple/nohash/`)
  t.match(page.text, '/pypi/pypi/files/nohash/_/nohash-1.0-py3-none-any.whl')
  t.notMatch(page.text, '#sha256=')
  for (let i = 0; i < 2; i++) {
    const file = await get(`${app.url}/pypi/pypi/files/nohash/_/nohash-1.0-py3-none-any.whl`)
    t.equal(file.status, 200)
    t.ok(file.body.equals(wheel))
    // The record that makes the next request a hit is written after the body ends.
    const record = `file:nohash ${bare.url}/files/nohash-1.0-py3-none-any.whl`
    for (let j = 0; j < 250 && !(await app.app.deps.metadata.getDocument('pypi', record)); j++)
      await new Promise((resolve) => setTimeout(resolve, 20))
  }
  t.equal(bare.count('/files/'), 1, 'kept after the first fetch')
  t.ok(await app.app.deps.blobs.has(digestOf(wheel)), 'under the digest it turned out to have')
  t.match(app.logs.raw.join('\n'), /gives no sha256 for this file/)
})

t.test(
  'a JSON upstream and an HTML upstream of the same files render the same HTML page',
  async (t) => {
    const json = await startPypiUpstream(t)
    const html = await startMirrorUpstream(t)
    const app = await startApp(t, {
      yaml: `pypi:
  indexes:
    - { name: a, default: true, upstreams: [{ url: "${json.index}" }], fileHosts: ["${json.files.origin}"] }
    - { name: b, upstreams: [{ url: "${html.index}" }] }
`,
    })
    for (const project of ['lib', 'app', 'fancy-name-pkg']) {
      const fromJson = await get(`${app.url}/pypi/a/simple/${project}/`)
      const fromHtml = await get(`${app.url}/pypi/b/simple/${project}/`)
      t.equal(fromJson.status, 200)
      t.equal(
        fromJson.text
          .replaceAll('/pypi/a/', '/pypi/x/')
          .replace(/<!--SERIAL \d+-->/, '')
          .trimEnd(),
        fromHtml.text
          .replaceAll('/pypi/b/', '/pypi/x/')
          .replace(/<!--SERIAL \d+-->/, '')
          .trimEnd(),
        project,
      )
      // Every file link carries its hash, as PEP 503 recommends and pip checks.
      const links = fromJson.text.match(/<a [^>]*>/g) ?? []
      t.ok(
        links.length > 0 && links.every((a) => /#sha256=[a-f0-9]{64}"/.test(a)),
        `${project}: hashes`,
      )
    }
  },
)
