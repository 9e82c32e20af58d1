import t from 'tap'
import { SIMPLE_MEDIA_TYPES, negotiateSimple, parseAccept } from '../../src/pypi/negotiate.ts'

const { json: JSON_V1, html: HTML_V1, legacyHtml: TEXT_HTML } = SIMPLE_MEDIA_TYPES

/** The content type chosen for an Accept, or 406. */
const chosen = (accept: string | string[] | undefined, format?: string): string => {
  const result = negotiateSimple(accept, format)
  return result.acceptable ? result.contentType : '406'
}

t.test('what real clients send gets what they prefer', async (t) => {
  // pip 22.2+ and uv (PEP 691's own example has the same shape).
  const pip = `${JSON_V1}, ${HTML_V1}; q=0.1, text/html; q=0.01`
  t.equal(chosen(pip), JSON_V1)
  t.equal(chosen(`${JSON_V1}, ${HTML_V1};q=0.2, text/html;q=0.01`), JSON_V1)
  // pip before 22.2, poetry's HTML path, easy_install.
  t.equal(chosen('text/html'), TEXT_HTML)
  // A browser.
  t.equal(
    chosen('text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8'),
    TEXT_HTML,
  )
  // curl.
  t.equal(chosen('*/*'), TEXT_HTML)
})

t.test('no Accept, or an empty one, gets text/html like a plain PEP 503 index', async (t) => {
  t.equal(chosen(undefined), TEXT_HTML)
  t.equal(chosen(''), TEXT_HTML)
  t.equal(chosen([]), TEXT_HTML)
  const result = negotiateSimple(undefined)
  t.strictSame(result, { acceptable: true, format: 'html', contentType: TEXT_HTML })
})

t.test('q-values decide, whatever the order', async (t) => {
  t.equal(chosen(`text/html;q=0.9, ${JSON_V1};q=0.5`), TEXT_HTML)
  t.equal(chosen(`${HTML_V1};q=0.3, ${JSON_V1};q=0.2`), HTML_V1)
  t.equal(chosen(`${JSON_V1};q=0.2, ${HTML_V1};q=0.3`), HTML_V1)
  t.equal(chosen(`${JSON_V1};q=1.0, ${HTML_V1};q=1`), JSON_V1, 'a tie between named types: JSON')
  t.equal(chosen(`text/html, ${HTML_V1}`), HTML_V1, 'a tie between HTML types: the v1 one')
  t.equal(chosen(`${JSON_V1};q=0.001, */*;q=0.0001`), JSON_V1)
})

t.test(
  'a named type beats a wildcard at the same q; the most specific range sets the q',
  async (t) => {
    t.equal(chosen(`*/*, ${JSON_V1}`), JSON_V1)
    t.equal(chosen('application/*'), HTML_V1, 'application/* reaches both v1 types: HTML first')
    t.equal(chosen(`text/html;q=0, */*`), HTML_V1, 'text/html refused, the wildcard takes the rest')
    t.equal(chosen(`${JSON_V1};q=0, application/*`), HTML_V1)
    t.equal(chosen(`text/*`), TEXT_HTML)
    t.equal(chosen(`*/*;q=0.5, text/html;q=0.1`), HTML_V1)
  },
)

t.test('latest is answered with the concrete v1 content type', async (t) => {
  t.strictSame(negotiateSimple('application/vnd.pypi.simple.latest+json'), {
    acceptable: true,
    format: 'json',
    contentType: JSON_V1,
  })
  t.strictSame(negotiateSimple('application/vnd.pypi.simple.latest+html'), {
    acceptable: true,
    format: 'html',
    contentType: HTML_V1,
  })
  t.equal(
    chosen(`${JSON_V1};q=0, application/vnd.pypi.simple.latest+json, text/html;q=0.1`),
    TEXT_HTML,
    'the concrete name outranks latest when both are sent',
  )
})

t.test('nothing acceptable is a typed 406 result listing what is offered', async (t) => {
  for (const accept of [
    'application/json',
    'application/vnd.pypi.simple.v2+json',
    'image/png, text/plain',
    `${JSON_V1};q=0, ${HTML_V1};q=0, text/html;q=0`,
    '*/*;q=0',
  ])
    t.strictSame(
      negotiateSimple(accept),
      { acceptable: false, offered: [JSON_V1, HTML_V1, TEXT_HTML] },
      accept,
    )
})

t.test('the ?format= parameter takes precedence when it names a known type', async (t) => {
  t.equal(chosen('text/html', JSON_V1), JSON_V1)
  t.equal(chosen('text/html', 'application/vnd.pypi.simple.latest+json'), JSON_V1)
  t.equal(chosen(JSON_V1, 'text/html'), TEXT_HTML)
  t.equal(chosen(JSON_V1, 'application/json'), JSON_V1, 'an unknown format falls back to Accept')
})

t.test('several Accept lines, odd spacing, case and parameters', async (t) => {
  t.equal(chosen(['text/html;q=0.1', JSON_V1.toUpperCase()]), JSON_V1)
  t.equal(chosen(`text/html ; charset=utf-8 ; Q = 0.5 , ${JSON_V1} ; q=0.4`), TEXT_HTML)
  t.strictSame(parseAccept('a/b;q=2, c/d;q=-1, e/f;q=x, nonsense, , g/h'), [
    { type: 'a/b', q: 1 },
    { type: 'c/d', q: 0 },
    { type: 'e/f', q: 0 },
    { type: 'g/h', q: 1 },
  ])
})

t.test(
  'answers kept by Accept header stay each header’s own, past the bound of the memo',
  async (t) => {
    // More distinct headers than the memo keeps, each asked twice: the second asks are memo hits
    // (or misses after it was cleared), and every answer must still be its header's.
    const headers = Array.from({ length: 600 }, (_, i) =>
      i % 2 === 0
        ? `${JSON_V1};q=0.${(i % 9) + 1}, text/html;q=0.5, x-${i}/y`
        : `text/html;q=0.${(i % 9) + 1}, ${JSON_V1};q=0.5, x-${i}/y`,
    )
    // JSON at q or 0.5 against text/html at the other; a tie between named types goes to JSON.
    const expected = (i: number): string => {
      const q = (i % 9) + 1
      const json = i % 2 === 0 ? q : 5
      const html = i % 2 === 0 ? 5 : q
      return json >= html ? JSON_V1 : TEXT_HTML
    }
    for (let round = 0; round < 2; round++)
      t.same(
        headers.map((h) => chosen(h)),
        headers.map((_, i) => expected(i)),
        `round ${round + 1}`,
      )
    const pip = `${JSON_V1}, ${HTML_V1}; q=0.1, text/html; q=0.01`
    t.equal(chosen(pip), JSON_V1)
    t.equal(chosen(pip, 'text/html'), TEXT_HTML, '?format= still decides over a known Accept')
    t.equal(chosen('x/y'), '406')
    t.equal(chosen('x/y'), '406', 'a refusal is kept as a refusal')
    t.equal(chosen(`${'a'.repeat(600)}/b, text/html`), TEXT_HTML, 'a long header is answered too')
  },
)
