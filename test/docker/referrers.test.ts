/**
 * Referrers (OCI distribution-spec 1.1): the upstream's answer must be an OCI
 * image index of descriptors; it is served re-serialized, so nothing else an
 * upstream sends (HTML, foreign fields, markup) reaches a client.
 */
import t, { type Test } from 'tap'
import { startApp } from '../helpers/app.ts'
import { fakeUpstream } from '../helpers/fake-upstream.ts'
import { OCI_INDEX, OCI_MANIFEST } from '../helpers/manifests.ts'
import { get } from '../helpers/http.ts'

const SUBJECT = `sha256:${'a'.repeat(64)}`
const REFERRER = `sha256:${'b'.repeat(64)}`

/** pullthrough in front of a fake upstream answering every referrers request with `body`. */
async function setup(t: Test, body: () => string | Buffer) {
  // Fault injection: the real registry here (Distribution 2.8) has no referrers API.
  const upstream = await fakeUpstream(t, (req, res) => {
    if (!req.url?.includes('/referrers/')) return res.writeHead(404).end()
    res.writeHead(200, { 'content-type': 'text/html' })
    return res.end(body())
  })
  const { url } = await startApp(t, {
    yaml: `docker: { registries: [{ name: docker.io, default: true, upstreams: [{ url: "${upstream.url}" }] }] }\n`,
  })
  return { url: `${url}/v2/library/app/referrers/${SUBJECT}`, upstream }
}

t.test(
  'a referrers index is served re-serialized, with only the fields the spec defines',
  async (t) => {
    const { url } = await setup(t, () =>
      JSON.stringify({
        schemaVersion: 2,
        manifests: [
          {
            mediaType: OCI_MANIFEST,
            digest: REFERRER,
            size: 1234,
            artifactType: 'application/spdx+json',
            annotations: { 'org.example.note': '<script>alert(1)</script>' },
            data: 'PHNjcmlwdD4=',
            urls: ['http://evil.example/x'],
            platform: { os: 'linux' },
          },
        ],
        extra: '<html>foreign</html>',
      }),
    )
    const res = await get(url)
    t.equal(res.status, 200)
    t.equal(res.headers['content-type'], OCI_INDEX)
    t.same(JSON.parse(res.text), {
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      manifests: [
        {
          mediaType: OCI_MANIFEST,
          digest: REFERRER,
          size: 1234,
          artifactType: 'application/spdx+json',
          annotations: { 'org.example.note': '<script>alert(1)</script>' },
        },
      ],
    })
    t.notMatch(res.text, /[<>]/, 'markup in annotations is escaped in the bytes')
    t.notMatch(res.text, 'evil.example')
  },
)

t.test(
  'anything that is not an OCI image index answers 502, never the upstream body',
  async (t) => {
    let body = ''
    const { url } = await setup(t, () => body)
    const descriptor = { mediaType: OCI_MANIFEST, digest: REFERRER, size: 1 }
    const invalid: [string, unknown][] = [
      ['an HTML page', 'INTERNAL-SECRET <script>x</script>'],
      ['another media type', { schemaVersion: 2, mediaType: 'text/html', manifests: [] }],
      ['schemaVersion 1', { schemaVersion: 1, manifests: [] }],
      ['no manifests', { schemaVersion: 2 }],
      ['a bad digest', { schemaVersion: 2, manifests: [{ ...descriptor, digest: 'x<y>' }] }],
      ['a negative size', { schemaVersion: 2, manifests: [{ ...descriptor, size: -1 }] }],
      ['a string size', { schemaVersion: 2, manifests: [{ ...descriptor, size: '1' }] }],
      ['a bad media type', { schemaVersion: 2, manifests: [{ ...descriptor, mediaType: 'x' }] }],
      [
        'non-string annotations',
        { schemaVersion: 2, manifests: [{ ...descriptor, annotations: { a: 1 } }] },
      ],
    ]
    for (const [what, doc] of invalid) {
      body = typeof doc === 'string' ? doc : JSON.stringify(doc)
      const res = await get(url)
      t.equal(res.status, 502, what)
      t.match(JSON.parse(res.text), { errors: [{ code: 'MANIFEST_INVALID' }] }, what)
      t.notMatch(res.text, /INTERNAL-SECRET|<script>/, what)
    }
  },
)
