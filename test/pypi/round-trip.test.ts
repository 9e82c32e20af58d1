import t from 'tap'
import { PYPI_REQUESTS_HTML, PYPI_REQUESTS_JSON, TUNA_REQUESTS_HTML } from './fixtures/pages.ts'
import { isProjectPage, type FileUrl, type ProjectPage } from '../../src/pypi/model.ts'
import { parseProjectHtml } from '../../src/pypi/parse-html.ts'
import { parseProjectJson } from '../../src/pypi/parse-json.ts'
import { renderProjectHtml } from '../../src/pypi/render-html.ts'
import { renderProjectJson } from '../../src/pypi/render-json.ts'

const PYPI = 'https://pypi.org/simple/requests/'
const TUNA = 'https://pypi.tuna.tsinghua.edu.cn/simple/requests/'
const options = (pageUrl: string) => ({ project: 'requests', pageUrl })

/** Renders with the upstream URLs kept, so the parsed-back model can be compared whole. */
const upstreamUrl: FileUrl = (file) => file.url

/** The fields the HTML format has no place for (PEP 700 added them to JSON only). */
const htmlFields = (page: ProjectPage): ProjectPage => ({
  name: page.name,
  files: page.files.map(({ size: _s, uploadTime: _u, ...rest }) => rest),
  ...(page.lastSerial === undefined ? {} : { lastSerial: page.lastSerial }),
})

t.test(
  'pypi.org HTML and JSON parse into the same model, but for the JSON-only fields',
  async (t) => {
    const html = parseProjectHtml(PYPI_REQUESTS_HTML, options(PYPI)).page
    const json = parseProjectJson(PYPI_REQUESTS_JSON, options(PYPI)).page
    t.strictSame(html, htmlFields(json))
  },
)

t.test('HTML -> model -> JSON -> model gives the same model', async (t) => {
  for (const [name, body, pageUrl] of [
    ['pypi.org', PYPI_REQUESTS_HTML, PYPI],
    ['TUNA', TUNA_REQUESTS_HTML, TUNA],
  ] as const) {
    const first = parseProjectHtml(body, options(pageUrl)).page
    const json = renderProjectJson(first, upstreamUrl)
    const second = parseProjectJson(json, options('https://pt.example/simple/requests/'))
    t.strictSame(second.dropped, [], name)
    t.equal(second.apiVersion, '1.0', `${name}: no sizes from HTML, so JSON 1.0`)
    t.strictSame(second.page, first, name)
  }
})

t.test('JSON -> model -> HTML -> model keeps all HTML can carry', async (t) => {
  const first = parseProjectJson(PYPI_REQUESTS_JSON, options(PYPI)).page
  const body = renderProjectHtml(first, upstreamUrl)
  const second = parseProjectHtml(body, options('https://pt.example/simple/requests/'))
  t.strictSame(second.dropped, [])
  t.equal(second.apiVersion, '1.1')
  t.strictSame(second.page, htmlFields(first))
})

t.test(
  'JSON -> model -> JSON -> model gives the same model, PEP 700 fields included',
  async (t) => {
    const first = parseProjectJson(PYPI_REQUESTS_JSON, options(PYPI)).page
    const second = parseProjectJson(renderProjectJson(first, upstreamUrl), options(PYPI))
    t.equal(second.apiVersion, '1.1')
    t.strictSame(second.page, first)
  },
)

t.test('relative pullthrough URLs resolve against the page the client fetched', async (t) => {
  const first = parseProjectHtml(TUNA_REQUESTS_HTML, options(TUNA)).page
  const relative: FileUrl = (file) => `../../files/requests/${encodeURIComponent(file.filename)}`
  const html = renderProjectHtml(first, relative)
  const client = parseProjectHtml(html, options('https://pt.example/pypi/tuna/simple/requests/'))
  t.strictSame(
    client.page.files.map((f) => f.url),
    first.files.map((f) => `https://pt.example/pypi/tuna/files/requests/${f.filename}`),
  )
  t.strictSame(
    client.page.files.map(({ url: _, ...rest }) => rest),
    first.files.map(({ url: _, ...rest }) => rest),
  )
})

t.test('a parsed page survives the metadata store as JSON text', async (t) => {
  for (const page of [
    parseProjectHtml(TUNA_REQUESTS_HTML, options(TUNA)).page,
    parseProjectJson(PYPI_REQUESTS_JSON, options(PYPI)).page,
  ]) {
    const stored: unknown = JSON.parse(JSON.stringify(page))
    t.ok(isProjectPage(stored))
    t.strictSame(stored, page)
  }
})
