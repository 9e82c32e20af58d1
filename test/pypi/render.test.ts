import t from 'tap'
import type { FileUrl, ProjectFile, ProjectPage } from '../../src/pypi/model.ts'
import { parseProjectHtml } from '../../src/pypi/parse-html.ts'
import { parseProjectJson } from '../../src/pypi/parse-json.ts'
import { escapeHtml } from '../../src/escape-html.ts'
import { renderProjectHtml } from '../../src/pypi/render-html.ts'
import { jsonApiVersion, renderProjectJson } from '../../src/pypi/render-json.ts'

const SHA = 'ab'.repeat(32)
const META_SHA = 'cd'.repeat(32)

/** How routes rewrite file URLs: to pullthrough itself, by filename. */
const toPullthrough: FileUrl = (file) =>
  `/pypi/pypi/files/requests/${encodeURIComponent(file.filename)}`

const PAGE: ProjectPage = {
  name: 'requests',
  files: [
    {
      filename: 'requests-2.32.3.tar.gz',
      url: 'https://files.pythonhosted.org/packages/aa/bb/requests-2.32.3.tar.gz',
      hashes: { sha256: SHA },
      requiresPython: '>=3.8',
      size: 131218,
      uploadTime: '2024-05-29T15:37:49.536413Z',
    },
    {
      filename: 'requests-2.32.0-py3-none-any.whl',
      url: 'https://files.pythonhosted.org/packages/cc/dd/requests-2.32.0-py3-none-any.whl',
      hashes: { sha256: SHA },
      yanked: 'conflicts with a CVE mitigation',
      coreMetadata: { sha256: META_SHA },
      size: 63475,
    },
  ],
  versions: ['2.32.0', '2.32.3'],
  lastSerial: 42,
}

t.test('renders HTML shaped like pypi.org with every link pointing at pullthrough', async (t) => {
  t.equal(
    renderProjectHtml(PAGE, toPullthrough),
    [
      '<!DOCTYPE html>',
      '<html>',
      '  <head>',
      '    <meta name="pypi:repository-version" content="1.1">',
      '    <title>Links for requests</title>',
      '  </head>',
      '  <body>',
      '    <h1>Links for requests</h1>',
      `    <a href="/pypi/pypi/files/requests/requests-2.32.3.tar.gz#sha256=${SHA}" data-requires-python="&gt;=3.8">requests-2.32.3.tar.gz</a><br />`,
      `    <a href="/pypi/pypi/files/requests/requests-2.32.0-py3-none-any.whl#sha256=${SHA}" data-yanked="conflicts with a CVE mitigation" data-core-metadata="sha256=${META_SHA}" data-dist-info-metadata="sha256=${META_SHA}">requests-2.32.0-py3-none-any.whl</a><br />`,
      '  </body>',
      '</html>',
      '<!--SERIAL 42-->',
      '',
    ].join('\n'),
  )
})

t.test('renders PEP 691 v1.1 JSON with the PEP 700 fields', async (t) => {
  const body = renderProjectJson(PAGE, toPullthrough)
  t.strictSame(JSON.parse(body), {
    meta: { 'api-version': '1.1', '_last-serial': 42 },
    name: 'requests',
    files: [
      {
        filename: 'requests-2.32.3.tar.gz',
        url: '/pypi/pypi/files/requests/requests-2.32.3.tar.gz',
        hashes: { sha256: SHA },
        'requires-python': '>=3.8',
        size: 131218,
        'upload-time': '2024-05-29T15:37:49.536413Z',
      },
      {
        filename: 'requests-2.32.0-py3-none-any.whl',
        url: '/pypi/pypi/files/requests/requests-2.32.0-py3-none-any.whl',
        hashes: { sha256: SHA },
        yanked: 'conflicts with a CVE mitigation',
        'core-metadata': { sha256: META_SHA },
        size: 63475,
      },
    ],
    versions: ['2.32.0', '2.32.3'],
  })
  t.notMatch(body, 'dist-info-metadata', 'PEP 714: never the old key in JSON')
})

t.test('declares JSON 1.0 when the page lacks what PEP 700 requires of 1.1', async (t) => {
  const noVersions: ProjectPage = { name: 'requests', files: PAGE.files }
  const noSize: ProjectPage = {
    ...PAGE,
    files: PAGE.files.map(({ size: _, ...rest }) => rest),
  }
  t.equal(jsonApiVersion(PAGE), '1.1')
  t.equal(jsonApiVersion(noVersions), '1.0')
  t.equal(jsonApiVersion(noSize), '1.0')
  const doc = JSON.parse(renderProjectJson(noSize, toPullthrough)) as Record<string, unknown>
  t.strictSame(doc.meta, { 'api-version': '1.0', '_last-serial': 42 })
  t.notOk('versions' in doc, 'versions is a 1.1 key')
})

t.test('yanked without a reason and metadata without hashes', async (t) => {
  const file: ProjectFile = {
    filename: 'a-1.0-py3-none-any.whl',
    url: 'https://x/a',
    hashes: {},
    yanked: true,
    coreMetadata: true,
  }
  const page: ProjectPage = { name: 'a', files: [file] }
  const html = renderProjectHtml(page, (f) => f.url)
  t.match(
    html,
    '<a href="https://x/a" data-yanked="" data-core-metadata="true" data-dist-info-metadata="true">',
  )
  const json = JSON.parse(renderProjectJson(page, (f) => f.url)) as { files: unknown[] }
  t.strictSame(json.files[0], {
    filename: 'a-1.0-py3-none-any.whl',
    url: 'https://x/a',
    hashes: {},
    yanked: true,
    'core-metadata': true,
  })
})

t.test('HTML links carry the strongest hash pip reads; JSON carries all, sorted', async (t) => {
  const file = (hashes: Record<string, string>): ProjectFile => ({
    filename: 'a-1.0.tar.gz',
    url: 'https://x/a',
    hashes,
  })
  const href = (hashes: Record<string, string>) =>
    /href="([^"]*)"/.exec(
      renderProjectHtml({ name: 'a', files: [file(hashes)] }, (f) => f.url),
    )?.[1]
  const md5 = '0'.repeat(32)
  const sha512 = '1'.repeat(128)
  const blake2b = '2'.repeat(128)
  t.equal(href({ md5, sha256: SHA, sha512 }), `https://x/a#sha256=${SHA}`)
  t.equal(href({ md5, sha512 }), `https://x/a#sha512=${sha512}`)
  t.equal(href({ blake2b }), 'https://x/a', 'no hash pip knows: no fragment')
  const json = renderProjectJson(
    { name: 'a', files: [file({ sha512, md5, sha256: SHA })] },
    (f) => f.url,
  )
  t.match(json, `"hashes":{"md5":"${md5}","sha256":"${SHA}","sha512":"${sha512}"}`)
})

t.test('escapes every attribute and text value in HTML', async (t) => {
  t.equal(escapeHtml(`&<>"'`), '&amp;&lt;&gt;&quot;&#39;')
  const hostile: ProjectPage = {
    name: 'x"><script>alert(1)</script>',
    files: [
      {
        // A valid distribution filename (no whitespace, no '/') that breaks out of quotes and text.
        filename: `a"onmouseover="alert(1)"'<b>&amp;-1.0.tar.gz`,
        url: 'https://x/a',
        hashes: { sha256: SHA },
        requiresPython: '<4,>=3.8" onmouseover="alert(1)',
        yanked: `"><script>alert('yanked')</script>`,
      },
    ],
  }
  const html = renderProjectHtml(hostile, () => `https://pt.example/f?a=1&b="2"'<x>`)
  // Only pullthrough's own tags, and only the attributes it writes.
  const tags = [...html.matchAll(/<([!/]?[a-zA-Z0-9]+)/g)].map((m) => m[1])
  t.strictSame(tags, [
    '!DOCTYPE',
    'html',
    'head',
    'meta',
    'title',
    '/title',
    '/head',
    'body',
    'h1',
    '/h1',
    'a',
    '/a',
    'br',
    '/body',
    '/html',
  ])
  const attributes = [...html.matchAll(/\s([a-z-]+)="/g)].map((m) => m[1])
  t.strictSame(attributes, ['name', 'content', 'href', 'data-requires-python', 'data-yanked'])
  t.match(html, 'href="https://pt.example/f?a=1&amp;b=&quot;2&quot;&#39;&lt;x&gt;#sha256=')
  t.match(html, `">a&quot;onmouseover=&quot;alert(1)&quot;&#39;&lt;b&gt;&amp;amp;-1.0.tar.gz</a>`)
  // What a client parses back is exactly what went in.
  const back = parseProjectHtml(html, { project: 'x', pageUrl: 'https://pt.example/simple/x/' })
  t.strictSame(back.dropped, [])
  const [file] = back.page.files
  t.equal(file?.filename, hostile.files[0]!.filename)
  t.equal(file?.requiresPython, hostile.files[0]!.requiresPython)
  t.equal(file?.yanked, hostile.files[0]!.yanked)
  t.equal(file?.url, `https://pt.example/f?a=1&b=%222%22%27%3Cx%3E`)
})

t.test(
  'JSON has no markup characters a sniffing browser could act on, and parses back',
  async (t) => {
    const hostile: ProjectPage = {
      name: 'x',
      files: [
        {
          filename: 'a<b>&c-1.0.tar.gz',
          url: 'https://x/a',
          hashes: {},
          yanked: '</script><script>alert(1)</script>',
        },
      ],
    }
    const body = renderProjectJson(hostile, (f) => f.url)
    t.notMatch(body, /[<>&]/)
    const back = parseProjectJson(body, { project: 'x', pageUrl: 'https://pt.example/simple/x/' })
    t.strictSame(back.page.files[0], hostile.files[0])
  },
)

t.test('renders deterministically: the same page gives the same bytes', async (t) => {
  const reordered: ProjectPage = {
    ...PAGE,
    files: PAGE.files.map((f) => ({ ...f, hashes: { sha512: '1'.repeat(128), ...f.hashes } })),
  }
  const again: ProjectPage = JSON.parse(JSON.stringify(reordered)) as ProjectPage
  const swapped: ProjectPage = {
    ...reordered,
    files: reordered.files.map((f) => ({ ...f, hashes: { sha256: SHA, sha512: '1'.repeat(128) } })),
  }
  t.equal(renderProjectHtml(reordered, toPullthrough), renderProjectHtml(again, toPullthrough))
  t.equal(renderProjectJson(reordered, toPullthrough), renderProjectJson(again, toPullthrough))
  t.equal(
    renderProjectJson(reordered, toPullthrough),
    renderProjectJson(swapped, toPullthrough),
    'hash key order does not matter',
  )
})
