import t from 'tap'
import { isDigestShaped, isRepositoryName, isTag, parseV2Path } from '../../src/docker/names.ts'

t.test('repository names follow the distribution grammar', async (t) => {
  for (const good of [
    'busybox',
    'library/busybox',
    'org/team/app',
    'a.b_c__d--e',
    'x0/y-1',
    'a'.repeat(255),
  ]) {
    t.ok(isRepositoryName(good), good)
  }
  for (const bad of [
    '',
    'Busybox',
    'a/',
    '/a',
    'a//b',
    'a/../b',
    '..',
    'a/./b',
    'a_',
    '-a',
    'a___b',
    'a b',
    'a:b',
    'a'.repeat(256),
    'a%2fb',
    'a\0b',
  ]) {
    t.notOk(isRepositoryName(bad), JSON.stringify(bad))
  }
})

t.test('tags and digest shapes', async (t) => {
  t.ok(isTag('latest'))
  t.ok(isTag('v1.2.3-rc_1'))
  t.ok(isTag('_x'))
  t.notOk(isTag('.hidden'))
  t.notOk(isTag('-x'))
  t.notOk(isTag('a'.repeat(129)))
  t.notOk(isTag('sha256:abc'))
  t.ok(isDigestShaped(`sha256:${'a'.repeat(64)}`))
  t.ok(isDigestShaped(`sha512:${'a'.repeat(128)}`))
  t.notOk(isDigestShaped('sha256'))
  t.notOk(isDigestShaped('sha256:../x'))
})

t.test('a /v2/ path splits into endpoint, name and reference, found from the end', async (t) => {
  t.same(parseV2Path('library/busybox/manifests/latest'), {
    kind: 'manifest',
    name: 'library/busybox',
    reference: 'latest',
  })
  t.same(parseV2Path('a/blobs/b/blobs/sha256:x'), {
    kind: 'blob',
    name: 'a/blobs/b',
    digest: 'sha256:x',
  })
  t.same(parseV2Path('org/app/tags/list'), { kind: 'tags', name: 'org/app' })
  t.same(parseV2Path('org/app/referrers/sha256:x'), {
    kind: 'referrers',
    name: 'org/app',
    digest: 'sha256:x',
  })
  t.same(parseV2Path('ghcr.io/org/app/manifests/v1'), {
    kind: 'manifest',
    name: 'ghcr.io/org/app',
    reference: 'v1',
  })
  t.equal(parseV2Path('busybox'), undefined)
  t.equal(parseV2Path('manifests/latest'), undefined)
  t.equal(parseV2Path('a/uploads/x'), undefined)
})
