import t from 'tap'
import {
  MEDIA_TYPES,
  accepts,
  isManifestMediaType,
  manifestContentType,
  manifestMediaType,
  parseAccept,
} from '../../src/docker/media-types.ts'

// What dockerd sends for a pull (one header line per type).
const DOCKERD_ACCEPT = [
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.v1+prettyjws',
]

t.test('parses Accept lists, several header lines and q-values', async (t) => {
  t.same(parseAccept('a/b, c/d;q=0.5 , e/f; charset=x'), [
    { type: 'a/b', q: 1 },
    { type: 'c/d', q: 0.5 },
    { type: 'e/f', q: 1 },
  ])
  t.same(parseAccept(['A/B', 'c/d;q=0']), [
    { type: 'a/b', q: 1 },
    { type: 'c/d', q: 0 },
  ])
  t.same(parseAccept(undefined), [])
})

t.test('a cached manifest is acceptable only when the client accepts its type', async (t) => {
  t.ok(accepts(DOCKERD_ACCEPT, MEDIA_TYPES.ociIndex))
  t.ok(accepts(DOCKERD_ACCEPT, MEDIA_TYPES.dockerManifest))
  const schema2Only = MEDIA_TYPES.dockerManifest
  t.notOk(accepts(schema2Only, MEDIA_TYPES.ociIndex))
  t.notOk(accepts(schema2Only, MEDIA_TYPES.dockerManifestList))
  t.ok(accepts(undefined, MEDIA_TYPES.ociManifest), 'no Accept accepts anything')
  t.ok(accepts('*/*', MEDIA_TYPES.ociManifest))
  t.ok(accepts('application/*', MEDIA_TYPES.ociManifest))
  t.notOk(accepts(`${MEDIA_TYPES.ociManifest};q=0, */*`, MEDIA_TYPES.ociManifest), 'q=0 refuses')
})

t.test('the four manifest media types are known', async (t) => {
  for (const type of Object.values(MEDIA_TYPES)) t.ok(isManifestMediaType(type), type)
  t.notOk(isManifestMediaType('application/vnd.docker.distribution.manifest.v1+prettyjws'))
  t.notOk(isManifestMediaType('application/json'))
})

t.test('a manifest is typed only with a known manifest media type', async (t) => {
  const json = (doc: unknown) => Buffer.from(JSON.stringify(doc))
  t.equal(
    manifestMediaType(json({ schemaVersion: 2, mediaType: MEDIA_TYPES.ociIndex }), 'text/html'),
    MEDIA_TYPES.ociIndex,
  )
  t.equal(
    manifestMediaType(json({ schemaVersion: 2, mediaType: 'text/html', layers: [] }), undefined),
    'application/octet-stream',
    'an unknown mediaType in the body',
  )
  t.equal(
    manifestMediaType(json({ schemaVersion: 2, layers: [] }), 'text/html'),
    MEDIA_TYPES.ociManifest,
    'no mediaType: the shape decides over an unknown header',
  )
  t.equal(manifestMediaType(Buffer.from('<html>'), 'text/html'), 'application/octet-stream')
  t.equal(
    manifestMediaType(json({ schemaVersion: 1, name: 'x' }), 'application/json'),
    'application/vnd.docker.distribution.manifest.v1+prettyjws',
  )
  t.equal(
    manifestMediaType(Buffer.from('{}'), 'application/vnd.docker.distribution.manifest.v1+json'),
    'application/vnd.docker.distribution.manifest.v1+json',
  )
  t.equal(manifestContentType('Text/HTML'), 'application/octet-stream')
  t.equal(manifestContentType(MEDIA_TYPES.dockerManifest), MEDIA_TYPES.dockerManifest)
})
