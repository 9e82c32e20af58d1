/** What the catalog says a blob is, from files made by the real tools (gzip, zstd, tar, zip). */
import { execFileSync } from 'node:child_process'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { gzipSync } from 'node:zlib'
import t from 'tap'
import { SNIFF_BYTES, typeOfContent, typeOfFileName } from '../../src/insight/artifact-kind.ts'
import { tempDir } from '../helpers/config.ts'

const json = (doc: unknown) => Buffer.from(JSON.stringify(doc))
const head = (bytes: Buffer) => typeOfContent(bytes.subarray(0, SNIFF_BYTES), bytes.length)

t.test('layers and archives by their first bytes', async (t) => {
  const dir = await tempDir(t, 'pt-kind-')
  const file = join(dir, 'data.txt')
  await writeFile(file, 'x'.repeat(100_000))
  const tar = execFileSync('tar', ['-cf', '-', '-C', dir, 'data.txt'])
  const zstd = execFileSync('zstd', ['-c', '-q', file])
  execFileSync('zip', ['-q', join(dir, 'a.zip'), file])
  const zip = await readFile(join(dir, 'a.zip'))

  t.same(head(gzipSync(tar)), { kind: 'layer', mediaType: 'application/gzip' })
  t.same(head(zstd), { kind: 'layer', mediaType: 'application/zstd' })
  t.same(head(tar), { kind: 'layer', mediaType: 'application/x-tar' })
  t.same(head(zip), { kind: 'file', mediaType: 'application/zip' })
  t.same(head(Buffer.from('plain bytes')), { kind: 'blob', mediaType: 'application/octet-stream' })
})

t.test('manifests, indexes and configs by their JSON', async (t) => {
  const docker = 'application/vnd.docker.distribution.manifest.v2+json'
  t.same(
    typeOfContent(json({ schemaVersion: 2, mediaType: docker, layers: [] }), 1e9),
    {
      kind: 'blob',
      mediaType: 'application/octet-stream',
    },
    'JSON not read whole is not guessed at',
  )
  const whole = (doc: unknown) => {
    const bytes = json(doc)
    return typeOfContent(bytes, bytes.length)
  }
  t.same(whole({ schemaVersion: 2, mediaType: docker, config: {}, layers: [] }), {
    kind: 'manifest',
    mediaType: docker,
  })
  t.same(
    whole({ schemaVersion: 2, config: {}, layers: [] }),
    {
      kind: 'manifest',
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
    },
    'an OCI manifest may leave its media type out',
  )
  t.same(whole({ schemaVersion: 2, manifests: [] }), {
    kind: 'index',
    mediaType: 'application/vnd.oci.image.index.v1+json',
  })
  t.same(
    whole({
      schemaVersion: 2,
      mediaType: 'application/vnd.docker.distribution.manifest.list.v2+json',
      manifests: [],
    }),
    { kind: 'index', mediaType: 'application/vnd.docker.distribution.manifest.list.v2+json' },
  )
  t.same(whole({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers' } }), {
    kind: 'config',
    mediaType: 'application/json',
  })
  t.same(whole({ hello: 1 }), { kind: 'blob', mediaType: 'application/json' })
  const broken = Buffer.from('  {"schemaVersion": 2,')
  t.same(typeOfContent(broken, broken.length), {
    kind: 'blob',
    mediaType: 'application/octet-stream',
  })
})

t.test('PyPI files by their names', async (t) => {
  t.same(typeOfFileName('lib-1.0-py3-none-any.whl'), {
    kind: 'wheel',
    mediaType: 'application/zip',
  })
  t.same(typeOfFileName('lib-1.0.tar.gz'), { kind: 'sdist', mediaType: 'application/gzip' })
  t.same(typeOfFileName('Lib-1.0.ZIP'), { kind: 'sdist', mediaType: 'application/zip' })
  t.same(typeOfFileName('lib-1.0-py3-none-any.whl.metadata'), {
    kind: 'metadata',
    mediaType: 'text/plain',
  })
  t.equal(typeOfFileName('lib-1.0.exe'), undefined)
})
