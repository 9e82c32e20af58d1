/**
 * The project list (`/simple/`): the upstream's HTML is parsed into project
 * names and re-rendered in the negotiated format, so no upstream markup or
 * Content-Type reaches a client or the disk; one load at a time; bounded by
 * a byte cap and the upstream's body idle timeout.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import t, { type Test } from 'tap'
import { projectNamesFromHtml } from '../../src/pypi/parse-project-list.ts'
import { renderProjectList } from '../../src/pypi/render-project-list.ts'
import { startApp, type TestApp } from '../helpers/app.ts'
import { fakeUpstream, type Handler } from '../helpers/fake-upstream.ts'
import { SIMPLE_JSON } from '../helpers/pypi-upstream.ts'
import { readAll } from '../helpers/streams.ts'
import { getOrCut } from '../helpers/http.ts'

const MiB = 1024 * 1024

/** A hostile index page: scripts, foreign links, entities, comments, a bogus Content-Type. */
const HOSTILE_LIST = `<!DOCTYPE html><html><head><script>alert("INTERNAL-SECRET")</script>
<meta http-equiv="refresh" content="0;url=http://evil.example/"></head><body>
<!-- <a href="/simple/commented/">commented</a> -->
<a href="/simple/requests/">requests</a><br/>
<a href="https://evil.example/simple/Foo_Bar/" onclick="steal()">Foo_Bar</a>
<a href="javascript:alert(1)">click <b>me</b></a>
<a href="/simple/zope-interface/">zope&#46;interface</a>
<a href="/simple/from-href/"></a>
<a href="/simple/bad/">&lt;script&gt;</a>
<p>INTERNAL-SECRET</p></body></html>`

async function setup(t: Test, handler: Handler, server = '', timeouts = '') {
  const upstream = await fakeUpstream(t, handler)
  const app = await startApp(t, {
    yaml: `${server}pypi: { indexes: [{ name: pypi, default: true, upstreams: [{ url: "${upstream.url}/simple/" }], retry: { attempts: 1 }${timeouts} }] }\n`,
  })
  return { upstream, app }
}

/** The names stored for the index's list, once the load has committed them. */
async function storedNames(app: TestApp): Promise<string | undefined> {
  for (let i = 0; i < 200; i++) {
    const record = await app.app.deps.metadata.getDocument('pypi', 'list:names')
    const digest = (record?.page as { digest?: string } | undefined)?.digest
    if (digest !== undefined)
      return (await readAll(await app.app.deps.blobs.createReadStream(digest))).toString()
    await sleep(20)
  }
  return undefined
}

t.test(
  'the list is re-rendered from names with the negotiated type, whatever the upstream sent',
  async (t) => {
    const { app } = await setup(t, (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'x-evil': '1' })
      res.end(HOSTILE_LIST)
    })
    const html = await getOrCut(`${app.url}/simple/`)
    t.equal(html.status, 200)
    t.equal(html.headers['content-type'], 'text/html')
    t.equal(html.headers['x-content-type-options'], 'nosniff')
    t.notOk(html.headers['x-evil'])
    const links = html.text.match(/<a [^>]*>[^<]*<\/a>/g) ?? []
    t.same(links, [
      '<a href="requests/">requests</a>',
      '<a href="foo-bar/">Foo_Bar</a>',
      '<a href="zope-interface/">zope.interface</a>',
      '<a href="from-href/">from-href</a>',
      '<a href="bad/">bad</a>',
    ])
    t.notMatch(html.text, /INTERNAL-SECRET|script|evil\.example|onclick|refresh|commented/)

    const json = await getOrCut(`${app.url}/simple/`, { headers: { accept: SIMPLE_JSON } })
    t.equal(json.headers['content-type'], SIMPLE_JSON)
    t.same(JSON.parse(json.text), {
      meta: { 'api-version': '1.0' },
      projects: ['requests', 'Foo_Bar', 'zope.interface', 'from-href', 'bad'].map((name) => ({
        name,
      })),
    })
    const format = encodeURIComponent('application/vnd.pypi.simple.v1+html')
    const v1html = await getOrCut(`${app.url}/simple/?format=${format}`)
    t.equal(v1html.headers['content-type'], 'application/vnd.pypi.simple.v1+html')

    t.equal(
      await storedNames(app),
      'requests\nFoo_Bar\nzope.interface\nfrom-href\nbad\n',
      'what is stored is the names, not the upstream page',
    )
  },
)

t.test('an upstream answering JSON or plain text is never relayed', async (t) => {
  let type = 'application/vnd.pypi.simple.v1+json'
  const { app } = await setup(t, (_req, res) => {
    res.writeHead(200, { 'content-type': type })
    res.end('{"projects":[{"name":"<script>x</script>"}]}')
  })
  const json = await getOrCut(`${app.url}/simple/`)
  t.equal(json.status, 502, 'HTML was asked for; a JSON list is refused')
  t.notMatch(json.text, 'script')
  type = 'text/plain'
  const plain = await getOrCut(`${app.url}/simple/`)
  t.equal(plain.status, 200)
  t.equal(plain.headers['content-type'], 'text/html')
  t.notMatch(plain.text, 'script')
})

t.test('concurrent requests for the list make one upstream request', async (t) => {
  let release: () => void = () => undefined
  const released = new Promise<void>((resolve) => (release = resolve))
  const { app, upstream } = await setup(t, async (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/html' })
    res.write('<a href="/simple/one/">one</a>\n')
    await released
    res.end('<a href="/simple/two/">two</a>\n')
  })
  const answers = Promise.all(
    Array.from({ length: 6 }, async (_, i) =>
      getOrCut(`${app.url}/simple/`, { headers: i % 2 ? { accept: SIMPLE_JSON } : {} }),
    ),
  )
  for (let i = 0; i < 200 && upstream.count('/simple/') === 0; i++) await sleep(10)
  await sleep(200)
  release()
  const results = await answers
  t.ok(results.every((r) => r.status === 200 && r.text.includes('two')))
  t.equal(upstream.count('/simple/'), 1)
})

t.test(
  'a list over the byte cap is cut: the client never gets a complete page, nothing is stored',
  async (t) => {
    const line = Buffer.from('<a href="/simple/pkg/">pkg</a>\n'.repeat(1024))
    let declare = false
    // storage.maxBlobSize caps the list too when it is below the list's own cap.
    const { app, upstream } = await setup(
      t,
      async (_req, res) => {
        res.writeHead(200, {
          'content-type': 'text/html',
          ...(declare ? { 'content-length': String(2 * MiB) } : {}),
        })
        for (let sent = 0; sent < 2 * MiB && !res.destroyed; sent += line.length) {
          if (!res.write(line)) await new Promise((resolve) => res.once('drain', resolve))
        }
        res.end()
      },
      'storage: { maxBlobSize: 1MiB }\n',
    )
    const cut = await getOrCut(`${app.url}/simple/`)
    t.ok(cut.cut || cut.status !== 200, `no complete page (status ${cut.status})`)
    t.notMatch(cut.text, '</html>')
    declare = true
    const refused = await getOrCut(`${app.url}/simple/`)
    t.equal(refused.status, 502, 'a declared Content-Length over the cap is refused')
    t.equal(await app.app.deps.metadata.getDocument('pypi', 'list:names'), undefined)
    t.match(app.logs.raw.join('\n'), /upstream document cut at the size limit/)
    t.match(app.logs.raw.join('\n'), /upstream document over the size limit/)
    t.equal(upstream.count('/simple/'), 2)
  },
)

t.test(
  'an upstream that stalls mid-list is cut after its body idle timeout; nothing is stored',
  async (t) => {
    const { app } = await setup(
      t,
      (_req, res) => {
        res.writeHead(200, { 'content-type': 'text/html' })
        res.write('<a href="/simple/one/">one</a>\n')
        // ...and nothing more, ever.
      },
      '',
      ', timeouts: { bodyIdle: 300ms }',
    )
    const started = Date.now()
    const stalled = await getOrCut(`${app.url}/simple/`)
    t.ok(stalled.cut, 'the client stream was destroyed')
    t.ok(Date.now() - started < 30_000, `after ${Date.now() - started} ms`)
    t.equal(await app.app.deps.metadata.getDocument('pypi', 'list:names'), undefined)
  },
)

t.test('names are read across chunk boundaries, and runaway markup fails', async (t) => {
  const parse = projectNamesFromHtml()
  const names = readAll(parse)
  for (const piece of ['<a hr', 'ef="/simple/Foo_Bar/">Foo_', 'Bar</a><a href="b', 'az/"></a>'])
    parse.write(piece)
  parse.end()
  t.equal((await names).toString(), 'Foo_Bar\nbaz\n')

  const runaway = projectNamesFromHtml()
  const failed = readAll(runaway).then(
    () => undefined,
    (error: unknown) => error,
  )
  runaway.write('<a href="')
  for (let i = 0; i < 32; i++) runaway.write('x'.repeat(4096))
  t.match(await failed, { code: 'PT_PYPI_DOCUMENT_INVALID' })

  const render = renderProjectList('json')
  const rendered = readAll(render)
  render.end('a\nb\n')
  const list = JSON.parse((await rendered).toString()) as { projects: unknown }
  t.same(list.projects, [{ name: 'a' }, { name: 'b' }])
})
