import t from 'tap'
import { oldTags } from '../../src/cache/tag-retention.ts'
import type { TagRecord } from '../../src/metadata/store.ts'

const digest = (c: string) => `sha256:${c.repeat(64)}`

function record(c: string, fetchedAt: number, updatedAt?: number): TagRecord {
  return {
    digest: digest(c),
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    size: 1,
    fetchedAt,
    ...(updatedAt === undefined ? {} : { updatedAt }),
  }
}

t.test('the newest N tags stay, by when they came to point at their digest', async (t) => {
  const records = new Map([
    ['old', record('a', 900, 100)],
    ['new', record('b', 200, 200)],
    ['legacy', record('c', 150)],
    ['newest', record('d', 300, 300)],
  ])
  const verdict = oldTags(records, 2, new Set())
  t.same(verdict.dropped, ['legacy', 'old'], 'a recent confirmation does not make a tag new')
  t.same(verdict.records, ['legacy', 'old'])
  t.equal(verdict.pinned, 0)
  t.same(oldTags(records, 4, new Set()).dropped, [], 'N or fewer: all stay')
})

t.test('a tag goes with its narrower views; a pinned tag stays and takes no place', async (t) => {
  const records = new Map([
    ['1', record('a', 100, 100)],
    ['1;accept=application/vnd.docker.distribution.manifest.v2+json', record('b', 100, 100)],
    ['2', record('c', 200, 200)],
    ['3', record('d', 300, 300)],
  ])
  t.same(oldTags(records, 1, new Set()), {
    dropped: ['2', '1'],
    records: ['2', '1', '1;accept=application/vnd.docker.distribution.manifest.v2+json'],
    pinned: 0,
  })
  const pinned = oldTags(records, 1, new Set([digest('b')]))
  t.same(pinned.dropped, ['2'], 'a pinned view keeps its tag')
  t.equal(pinned.pinned, 1)
})

t.test('equal times are ordered by name, so runs agree', async (t) => {
  const records = new Map([
    ['b', record('a', 100, 100)],
    ['a', record('b', 100, 100)],
    ['c', record('c', 100, 100)],
  ])
  t.same(oldTags(records, 1, new Set()).dropped, ['b', 'c'])
})
