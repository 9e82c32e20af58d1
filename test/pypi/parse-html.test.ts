import t from 'tap'
import { PYPI_REQUESTS_HTML, TUNA_REQUESTS_HTML } from './fixtures/pages.ts'
import { ProjectPageInvalidError } from '../../src/pypi/errors.ts'
import { parseProjectHtml } from '../../src/pypi/parse-html.ts'

const PYPI_PAGE = 'https://pypi.org/simple/requests/'
const TUNA_PAGE = 'https://pypi.tuna.tsinghua.edu.cn/simple/requests/'

const page = (links: string, head = ''): string =>
  `<!DOCTYPE html><html><head>${head}</head><body>${links}</body></html>`

const parse = (html: string, pageUrl = PYPI_PAGE) =>
  parseProjectHtml(html, { project: 'Requests', pageUrl })

t.test(
  'reads a pypi.org page: absolute links, hashes, requires-python, yanks, metadata',
  async (t) => {
    const { page, dropped, apiVersion } = parse(PYPI_REQUESTS_HTML)
    t.strictSame(dropped, [])
    t.equal(apiVersion, '1.1')
    t.equal(page.name, 'requests')
    t.equal(page.lastSerial, 23846711)
    t.equal(page.files.length, 7)
    const wheel = page.files.find((f) => f.filename === 'requests-2.32.3-py3-none-any.whl')!
    t.equal(
      wheel.url,
      'https://files.pythonhosted.org/packages/ed/0e/f9c4a70ac81f7b78a52fc1364faf86e133eea09f5f150989dc8a6f509c/requests-2.32.3-py3-none-any.whl',
      'the fragment is removed from the URL',
    )
    t.strictSame(wheel.hashes, {
      sha256: 'bd0c80ddb748e530fc1c4dec6b66909a820f246d37f72b3461438ce1fcd8a30a',
    })
    t.equal(wheel.requiresPython, '>=3.8', 'entities are decoded')
    t.strictSame(wheel.coreMetadata, {
      sha256: '141843c8be6d5ac65603c2dfd198b20ed75c2c749cf199d080e839378b30953c',
    })
    t.equal(wheel.yanked, undefined)
    const yanked = page.files.find((f) => f.filename === 'requests-2.32.0.tar.gz')!
    t.equal(yanked.yanked, 'Yanked due to conflicts with CVE-2024-35195 mitigation')
    t.equal(yanked.coreMetadata, undefined)
    const old = page.files[0]!
    t.equal(old.filename, 'requests-2.0.0.tar.gz')
    t.equal(old.requiresPython, undefined)
  },
)

t.test(
  'resolves a TUNA-style mirror page with ../../packages/ links against the page URL',
  async (t) => {
    const tuna = parse(TUNA_REQUESTS_HTML, TUNA_PAGE)
    const pypi = parse(PYPI_REQUESTS_HTML)
    t.strictSame(tuna.dropped, [])
    t.equal(tuna.page.files.length, 7)
    t.equal(
      tuna.page.files[6]!.url,
      'https://pypi.tuna.tsinghua.edu.cn/packages/50/ed/184d31fe6550d487979a666e214a6a63fc8186b1992eb13711ca21a09e/requests-2.32.3.tar.gz',
    )
    // Same files as pypi.org apart from where they live.
    const withoutUrls = (files: readonly { url: string }[]) =>
      files.map(({ url: _, ...rest }) => rest)
    t.strictSame(withoutUrls(tuna.page.files), withoutUrls(pypi.page.files))
  },
)

t.test('honours <base href> as pip does', async (t) => {
  const html = page(
    '<a href="f/x-1.0.tar.gz#sha256=' + 'a'.repeat(64) + '">x-1.0.tar.gz</a>',
    '<base href="https://mirror.example/root/">',
  )
  t.equal(parse(html).page.files[0]!.url, 'https://mirror.example/root/f/x-1.0.tar.gz')
})

t.test('an empty data-yanked means yanked without a reason', async (t) => {
  const { page: p } = parse(
    page(
      '<a href="/a-1.0.tar.gz" data-yanked="">a-1.0.tar.gz</a>' +
        '<a href="/a-1.1.tar.gz" data-yanked>a-1.1.tar.gz</a>' +
        '<a href="/a-1.2.tar.gz" data-yanked="broken &amp; bad">a-1.2.tar.gz</a>' +
        '<a href="/a-1.3.tar.gz">a-1.3.tar.gz</a>',
    ),
  )
  t.strictSame(
    p.files.map((f) => f.yanked),
    [true, true, 'broken & bad', undefined],
  )
})

t.test(
  'reads core metadata from data-core-metadata first, else data-dist-info-metadata',
  async (t) => {
    const sha = (c: string) => c.repeat(64)
    const { page: p } = parse(
      page(
        `<a href="/a-1.0.whl" data-core-metadata="true">a-1.0-py3-none-any.whl</a>` +
          `<a href="/a-1.1.whl" data-dist-info-metadata="sha256=${sha('B')}">a-1.1-py3-none-any.whl</a>` +
          `<a href="/a-1.2.whl" data-core-metadata="sha256=${sha('c')}" data-dist-info-metadata="true">a-1.2-py3-none-any.whl</a>` +
          `<a href="/a-1.3.whl" data-core-metadata="sha256=nothex">a-1.3-py3-none-any.whl</a>` +
          `<a href="/a-1.4.whl" data-core-metadata="false">a-1.4-py3-none-any.whl</a>`,
      ),
    )
    t.strictSame(
      p.files.map((f) => f.coreMetadata),
      [true, { sha256: sha('b') }, { sha256: sha('c') }, undefined, undefined],
    )
  },
)

t.test(
  'reads hashes from the fragment, lowercased, and ignores other fragment pairs',
  async (t) => {
    const { page: p, dropped } = parse(
      page(
        `<a href="/a-1.0.tar.gz#SHA256=${'AB'.repeat(32)}">a-1.0.tar.gz</a>` +
          `<a href="/a-1.1.tar.gz#md5=${'0'.repeat(32)}&amp;egg=a">a-1.1.tar.gz</a>` +
          `<a href="/a-1.2.tar.gz#egg=a">a-1.2.tar.gz</a>` +
          `<a href="/a-1.3.tar.gz">a-1.3.tar.gz</a>`,
      ),
    )
    t.strictSame(dropped, [])
    t.strictSame(
      p.files.map((f) => f.hashes),
      [{ sha256: 'ab'.repeat(32) }, { md5: '0'.repeat(32) }, {}, {}],
    )
  },
)

t.test('drops links it cannot use, with a reason the caller can log', async (t) => {
  const { page: p, dropped } = parse(
    page(
      '<a href="/ok-1.0.tar.gz">ok-1.0.tar.gz</a>' +
        '<a href="/x">../../etc/passwd</a>' +
        '<a href="/evil.html">evil.html</a>' +
        '<a href="/ok-1.0.tar.gz#sha256=0">ok-1.0.tar.gz</a>' +
        '<a href="/ok-1.0.tar.gz?again">ok-1.0.tar.gz</a>' +
        '<a href="http://[::1">bad-1.0.tar.gz</a>' +
        '<a name="anchor-without-href">not a link</a>',
    ),
  )
  t.strictSame(
    p.files.map((f) => f.filename),
    ['ok-1.0.tar.gz'],
  )
  t.strictSame(dropped, [
    { href: '/x', filename: '../../etc/passwd', reason: 'invalid-filename' },
    { href: '/evil.html', filename: 'evil.html', reason: 'invalid-filename' },
    { href: '/ok-1.0.tar.gz#sha256=0', filename: 'ok-1.0.tar.gz', reason: 'invalid-hash' },
    { href: '/ok-1.0.tar.gz?again', filename: 'ok-1.0.tar.gz', reason: 'duplicate-filename' },
    { href: 'http://[::1', filename: 'bad-1.0.tar.gz', reason: 'invalid-url' },
  ])
})

t.test(
  'keeps links with other schemes as URLs: the host allowlist is applied elsewhere',
  async (t) => {
    const { page: p } = parse(
      page(
        '<a href="javascript:alert(1)">a-1.0.tar.gz</a>' +
          '<a href="file:///etc/passwd">a-1.1.tar.gz</a>' +
          '<a href="http://169.254.169.254/a-1.2.tar.gz">a-1.2.tar.gz</a>',
      ),
    )
    t.strictSame(
      p.files.map((f) => f.url),
      ['javascript:alert(1)', 'file:///etc/passwd', 'http://169.254.169.254/a-1.2.tar.gz'],
    )
  },
)

t.test('takes the filename from the link text, else from the URL', async (t) => {
  const { page: p } = parse(
    page(
      '<a href="/dl/123"> <span>a-1.0.tar.gz</span>\n</a>' +
        '<a href="/whl/torch-2.3.1%2Bcu121-cp311-cp311-linux_x86_64.whl"></a>' +
        '<a href="/a-1.1.tar.gz">a-1.1&#46;tar.gz</a>',
    ),
  )
  t.strictSame(
    p.files.map((f) => f.filename),
    ['a-1.0.tar.gz', 'torch-2.3.1+cu121-cp311-cp311-linux_x86_64.whl', 'a-1.1.tar.gz'],
  )
})

t.test(
  'tolerates sloppy HTML: unclosed anchors, uppercase tags and attributes, no quotes',
  async (t) => {
    const { page: p } = parse(
      '<HTML><BODY><A HREF=/a-1.0.tar.gz DATA-REQUIRES-PYTHON=&gt;=3.8>a-1.0.tar.gz' +
        '<a href="/a-1.1.tar.gz">a-1.1.tar.gz</a><br>',
    )
    t.strictSame(
      p.files.map((f) => [f.filename, f.requiresPython]),
      [
        ['a-1.0.tar.gz', '>=3.8'],
        ['a-1.1.tar.gz', undefined],
      ],
    )
  },
)

t.test('an empty page is a project without files', async (t) => {
  const { page: p, dropped, apiVersion } = parse(page(''))
  t.strictSame(p, { name: 'requests', files: [] })
  t.strictSame(dropped, [])
  t.equal(apiVersion, undefined)
})

t.test('refuses a page of a repository version it does not speak (PEP 629)', async (t) => {
  const meta = (v: string) => `<meta name="pypi:repository-version" content="${v}">`
  t.throws(() => parse(page('', meta('2.0'))), ProjectPageInvalidError)
  t.throws(() => parse(page('', meta('one'))), { code: 'PT_PYPI_PAGE_INVALID' })
  t.equal(parse(page('', meta('1.4'))).apiVersion, '1.4', 'a newer minor version is read')
})
