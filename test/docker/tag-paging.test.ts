/**
 * How pullthrough follows an upstream's tag-list pages (`Link: <...>;
 * rel="next"`): only on the upstream's own origin, with a parser that is linear
 * in the header and a cap on the header and on the whole list. The upstreams
 * here are hostile on purpose (fault injection); tags/list paging against a
 * real registry is in manifests.test.ts.
 */
import t, { type Test } from 'tap'
import { request } from 'undici'
import { MAX_LINK_HEADER_CHARS, nextLinkTarget } from '../../src/docker/remote.ts'
import { MAX_TAG_LIST_BYTES } from '../../src/docker/tags.ts'
import { startApp } from '../helpers/app.ts'
import { fakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.ts'

const PASSWORD = 'tag-s3cret-pw'
const BASIC = `Basic ${Buffer.from(`bob:${PASSWORD}`).toString('base64')}`

interface Page {
  readonly tags: string[]
  readonly link?: string
}

/** An upstream answering tags/list pages by the `last` query parameter ('' for the first). */
async function tagUpstream(
  t: Test,
  pages: (upstream: FakeUpstream) => Record<string, Page>,
): Promise<FakeUpstream> {
  const upstream = await fakeUpstream(t)
  const byLast = pages(upstream)
  upstream.handle((req, res) => {
    const url = new URL(req.url ?? '', 'http://x')
    const page = byLast[url.searchParams.get('last') ?? '']
    if (!url.pathname.endsWith('/tags/list') || !page) return res.writeHead(404).end()
    const name = url.pathname.slice('/v2/'.length, -'/tags/list'.length)
    res.writeHead(200, {
      'content-type': 'application/json',
      ...(page.link === undefined ? {} : { link: page.link }),
    })
    res.end(JSON.stringify({ name, tags: page.tags }))
  })
  return upstream
}

async function appWith(t: Test, upstream: FakeUpstream) {
  return startApp(t, {
    yaml: `docker:
  registries:
    - name: docker.io
      default: true
      upstreams: [{ url: "${upstream.url}", username: bob, password: "${PASSWORD}" }]
      retry: { attempts: 1 }
`,
  })
}

async function tagsOf(url: string) {
  const res = await request(url)
  const text = await res.body.text()
  return { status: res.statusCode, body: JSON.parse(text) as Record<string, unknown> }
}

t.test(
  'a Link to another host is not followed, and no credentials go anywhere but the upstream',
  async (t) => {
    const other = await fakeUpstream(t, (_req, res) =>
      res
        .writeHead(200, { 'content-type': 'application/json' })
        .end('{"name":"x","tags":["from-the-other-host"]}'),
    )
    const host = other.url.slice('http://'.length)
    const links = [
      `</\\/${host}/v2/library/app/tags/list?n=1000&last=b>; rel="next"`,
      `<\\\\${host}/v2/library/app/tags/list?n=1000&last=b>; rel="next"`,
      `<//${host}/v2/library/app/tags/list?n=1000&last=b>; rel="next"`,
      `<${other.url}/v2/library/app/tags/list?n=1000&last=b>; rel="next"`,
    ]
    for (const [i, link] of links.entries()) {
      await t.test(link, async (t) => {
        const upstream = await tagUpstream(t, () => ({ '': { tags: ['a', 'b'], link } }))
        const { url } = await appWith(t, upstream)
        const res = await tagsOf(`${url}/v2/library/app${i}/tags/list`)
        t.equal(res.status, 200)
        t.same(res.body.tags, ['a', 'b'], 'only the upstream’s own page')
        t.ok(upstream.requests.length >= 1)
        t.ok(
          upstream.requests.every((r) => r.headers.authorization === BASIC),
          'the upstream got its credentials',
        )
      })
    }
    t.equal(other.requests.length, 0, 'the other host was never asked, with or without credentials')
  },
)

t.test('Link pages on the upstream’s own origin are followed, relative or absolute', async (t) => {
  const upstream = await tagUpstream(t, (self) => ({
    '': { tags: ['a', 'b'], link: '</v2/library/app/tags/list?n=1000&last=b>; rel="next"' },
    b: {
      tags: ['c', 'd'],
      link: `<${self.url}/v2/library/app/tags/list?n=1000&last=d>; rel=next`,
    },
    d: { tags: ['e'] },
  }))
  const { url } = await appWith(t, upstream)
  const res = await tagsOf(`${url}/v2/library/app/tags/list`)
  t.same(res.body.tags, ['a', 'b', 'c', 'd', 'e'])
  t.equal(upstream.count('/v2/library/app/tags/list'), 3)
})

t.test(`a Link header over ${MAX_LINK_HEADER_CHARS} characters is ignored`, async (t) => {
  const padding = Array.from({ length: 400 }, (_, i) => `</v2/p${i}>; rel="prev"`).join(', ')
  const link = `${padding}, </v2/library/app/tags/list?n=1000&last=b>; rel="next"`
  t.ok(link.length > MAX_LINK_HEADER_CHARS && link.length < 16 * 1024, 'under undici’s limit')
  const upstream = await tagUpstream(t, () => ({
    '': { tags: ['a', 'b'], link },
    b: { tags: ['c'] },
  }))
  const { url } = await appWith(t, upstream)
  const res = await tagsOf(`${url}/v2/library/app/tags/list`)
  t.same(res.body.tags, ['a', 'b'])
  t.equal(upstream.count('/v2/library/app/tags/list'), 1, 'the next page was not asked for')
})

t.test(
  `a tag list over ${MAX_TAG_LIST_BYTES / 1024 / 1024} MiB of tag names answers a clear error`,
  async (t) => {
    // Pages of about 3.3 MB of names, each under the 4 MiB page limit; the sixth crosses 16 MiB.
    const PAGES = 7
    const TAGS_PER_PAGE = 34_000
    const tag = (page: number, i: number) => `p${page}-${i}-${'x'.repeat(88)}`
    const upstream = await tagUpstream(t, () =>
      Object.fromEntries(
        Array.from({ length: PAGES }, (_, page) => [
          page === 0 ? '' : `page${page}`,
          {
            tags: Array.from({ length: TAGS_PER_PAGE }, (_, i) => tag(page, i)),
            ...(page < PAGES - 1
              ? { link: `</v2/library/big/tags/list?n=1000&last=page${page + 1}>; rel="next"` }
              : {}),
          },
        ]),
      ),
    )
    const { url } = await appWith(t, upstream)
    const res = await tagsOf(`${url}/v2/library/big/tags/list`)
    t.equal(res.status, 502)
    t.match(res.body, {
      errors: [{ code: 'UNAVAILABLE', message: /tag list is over the 16 MiB/ }],
    })
    t.ok(upstream.count('/v2/library/big/tags/list') < PAGES, 'paging stopped at the cap')
  },
)

t.test('the Link parser is linear in the header length', async (t) => {
  // Shapes that make an unanchored `<([^>]+)>` regex backtrack, or a naive parser
  // rescan, at 1 MiB each (the cap aside). Linear: well under a second in all; the
  // old regex needed ~200 ms for 16 KiB, so hours for these.
  const MiB = 1024 * 1024
  const hostile = [
    '<'.repeat(MiB),
    '<a'.repeat(MiB / 2),
    `<${'x'.repeat(MiB)}`,
    ','.repeat(MiB),
    '<a>;'.repeat(MiB / 4),
    '<a>, '.repeat(MiB / 5),
    `<a>${';rel=prev'.repeat(MiB / 10)}`,
    `<a>;rel=${' '.repeat(MiB)}`,
  ]
  const started = Date.now()
  for (const header of hostile) t.equal(nextLinkTarget(header, Infinity), undefined)
  const ms = Date.now() - started
  t.ok(
    ms < 10_000,
    `${ms} ms for ${hostile.length} headers of up to 1 MiB (bound generous for a loaded box)`,
  )
  t.equal(
    nextLinkTarget('<a>; rel="prev", </v2/x?last=b>; REL="prev next"', Infinity),
    '/v2/x?last=b',
  )
  t.equal(nextLinkTarget('</v2/x?n=1000&last=b>;rel=next'), '/v2/x?n=1000&last=b')
  t.equal(nextLinkTarget('</v2/x>; rel="nextish"'), undefined)
  t.equal(nextLinkTarget('</v2/x>; rel=next', 10), undefined, 'over the cap: ignored')
})
