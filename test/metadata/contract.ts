/**
 * The MetadataStore contract: every implementation must pass these. Called by
 * fs-store.test.ts and redis-store.test.ts with a factory for a fresh, empty store.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import type { Test } from 'tap'
import { MetadataClosedError } from '../../src/metadata/errors.ts'
import {
  DAY_MS,
  HOUR_MS,
  MAX_REFERENCES_PER_ARTIFACT,
  ZERO_COUNTS,
  type UsageDelta,
} from '../../src/metadata/statistics.ts'
import type { MetadataStore, TagRecord } from '../../src/metadata/store.ts'

export interface StoreOptions {
  /** Records nobody used for this long are collected. */
  readonly recordRetentionMs?: number
}

export type StoreFactory = (t: Test, options?: StoreOptions) => Promise<MetadataStore>

/** A retention short enough to wait out, long enough for a loaded machine's pauses. */
const RETENTION_MS = 2000

const DIGEST_A = `sha256:${'a'.repeat(64)}`
const DIGEST_B = `sha256:${'b'.repeat(64)}`
const DIGEST_C = `sha256:${'c'.repeat(64)}`

function tag(digest: string, fetchedAt = 1000): TagRecord {
  return {
    digest,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    size: 1234,
    fetchedAt,
    etag: `"${digest.slice(7, 15)}"`,
  }
}

export function runContract(t: Test, makeStore: StoreFactory): void {
  t.test('tags: put, get, replace, delete, and the repositories that have tags', async (t) => {
    const store = await makeStore(t)
    t.equal(await store.getTag('docker.io', 'library/busybox', 'latest'), undefined)
    await store.putTag('docker.io', 'library/busybox', 'latest', tag(DIGEST_A))
    await store.putTag('docker.io', 'library/busybox', '1.36', tag(DIGEST_B))
    await store.putTag('docker.io', 'library/alpine', 'latest', tag(DIGEST_C))
    await store.putTag('ghcr.io', 'org/app', 'v1', tag(DIGEST_C))
    t.same(await store.getTag('docker.io', 'library/busybox', 'latest'), tag(DIGEST_A))
    await store.putTag('docker.io', 'library/busybox', 'latest', tag(DIGEST_C, 2000))
    t.same(await store.getTag('docker.io', 'library/busybox', 'latest'), tag(DIGEST_C, 2000))
    t.same(await store.listRepositories('docker.io'), ['library/alpine', 'library/busybox'])
    t.same(await store.listRepositories('ghcr.io'), ['org/app'])
    t.same(await store.listRepositories('quay.io'), [])
    await store.deleteTag('docker.io', 'library/alpine', 'latest')
    t.equal(await store.getTag('docker.io', 'library/alpine', 'latest'), undefined)
    t.same(
      await store.listRepositories('docker.io'),
      ['library/busybox'],
      'a repository without tags is no longer listed',
    )
    await store.deleteTag('docker.io', 'nothing/here', 'x')
    const busybox = await store.listTags('docker.io', 'library/busybox')
    t.same(
      [...busybox.entries()].sort(([a], [b]) => a.localeCompare(b)),
      [
        ['1.36', tag(DIGEST_B)],
        ['latest', tag(DIGEST_C, 2000)],
      ],
      'a repository lists its tags with their records',
    )
    t.same([...(await store.listTags('docker.io', 'library/alpine')).keys()], [])
    t.same([...(await store.listTags('quay.io', 'nothing')).keys()], [])
  })

  t.test('names with separators, unicode and spaces never collide', async (t) => {
    const store = await makeStore(t)
    await store.putTag('a:b', 'c', 'd', tag(DIGEST_A))
    await store.putTag('a', 'b:c', 'd', tag(DIGEST_B))
    await store.putTag('a', 'b', 'c:d', tag(DIGEST_C))
    await store.putTag('reg', 'ü ñ/π', 'tag with space', tag(DIGEST_A))
    t.equal((await store.getTag('a:b', 'c', 'd'))?.digest, DIGEST_A)
    t.equal((await store.getTag('a', 'b:c', 'd'))?.digest, DIGEST_B)
    t.equal((await store.getTag('a', 'b', 'c:d'))?.digest, DIGEST_C)
    t.equal((await store.getTag('reg', 'ü ñ/π', 'tag with space'))?.digest, DIGEST_A)
    t.same(await store.listRepositories('a'), ['b', 'b:c'])
    t.same([...(await store.listTags('a', 'b')).keys()], ['c:d'], 'only its own repository')
    t.same([...(await store.listTags('reg', 'ü ñ/π')).keys()], ['tag with space'])
    await store.putDocument('pypi', 'a:b', { fetchedAt: 1, page: 'one' })
    await store.putDocument('pypi:a', 'b', { fetchedAt: 1, page: 'two' })
    t.equal((await store.getDocument('pypi', 'a:b'))?.page, 'one')
    t.equal((await store.getDocument('pypi:a', 'b'))?.page, 'two')
  })

  t.test('index pages round-trip, large ones included', async (t) => {
    const store = await makeStore(t)
    t.equal(await store.getDocument('pypi', 'numpy'), undefined)
    const files = Array.from({ length: 20_000 }, (_, i) => ({
      filename: `numpy-1.${i}.0-cp312-cp312-manylinux_2_17_x86_64.whl`,
      url: `https://files.example/packages/${i}/numpy.whl`,
      hashes: { sha256: 'f'.repeat(64) },
    }))
    const record = {
      fetchedAt: 5000,
      etag: 'W/"abc"',
      upstream: 'https://pypi.org/simple/',
      page: { name: 'numpy', files },
    }
    t.ok(JSON.stringify(record).length > 3_000_000, 'several MB of JSON')
    const bytes = await store.putDocument('pypi', 'numpy', record)
    t.equal(bytes, Buffer.byteLength(JSON.stringify(record)), 'put says how big the stored form is')
    t.same(await store.getDocument('pypi', 'numpy'), record)
    const sized = await store.readDocument('pypi', 'numpy')
    t.same(sized, { record, bytes }, 'and so does a sized read')
    await store.deleteDocument('pypi', 'numpy')
    t.equal(await store.getDocument('pypi', 'numpy'), undefined)
  })

  t.test(
    'pages and tag records nobody used for the retention are collected; ones read recently stay',
    async (t) => {
      const store = await makeStore(t, { recordRetentionMs: RETENTION_MS })
      const page = (name: string) => ({ fetchedAt: 1, page: { name, files: [] } })
      await store.putDocument('pypi', 'kept', page('kept'))
      await store.putDocument('pypi', 'dropped', page('dropped'))
      await store.putDocument('docker-tags:docker.io', 'library/dropped', page('tags'))
      await store.putTag('docker.io', 'library/kept', 'latest', tag(DIGEST_A))
      await store.putTag('docker.io', 'library/dropped', 'latest', tag(DIGEST_B))
      await store.putBlob(DIGEST_C, 10, 1)
      await sleep(RETENTION_MS * 0.6)
      // Read, as a page or tag served (fresh or stale) is read: that is a use.
      t.ok(await store.getDocument('pypi', 'kept'))
      t.ok(await store.getTag('docker.io', 'library/kept', 'latest'))
      await sleep(RETENTION_MS * 0.6)
      await store.collectUnused()
      t.same((await store.getDocument('pypi', 'kept'))?.page, { name: 'kept', files: [] })
      t.equal((await store.getTag('docker.io', 'library/kept', 'latest'))?.digest, DIGEST_A)
      t.equal(await store.getDocument('pypi', 'dropped'), undefined, 'an unused page is gone')
      t.equal(
        await store.getDocument('docker-tags:docker.io', 'library/dropped'),
        undefined,
        'an unused cached document is gone',
      )
      t.equal(
        await store.getTag('docker.io', 'library/dropped', 'latest'),
        undefined,
        'an unused tag record is gone',
      )
      t.same(
        await store.listRepositories('docker.io'),
        ['library/kept'],
        'a repository left without tags is no longer listed',
      )
      t.equal((await store.getBlob(DIGEST_C))?.size, 10, 'blob records are left to eviction')
    },
  )

  t.test('blob records: put, touch, delete, LRU order and totals', async (t) => {
    const store = await makeStore(t)
    t.same(await store.blobTotals(), { count: 0, bytes: 0 })
    await store.putBlob(DIGEST_A, 100, 1000)
    await store.putBlob(DIGEST_B, 200, 2000)
    await store.putBlob(DIGEST_C, 300, 3000)
    t.same(await store.getBlob(DIGEST_A), {
      digest: DIGEST_A,
      size: 100,
      createdAt: 1000,
      lastAccess: 1000,
      hits: 0,
    })
    await store.touchBlob(DIGEST_A, 4000)
    await store.touchBlob(DIGEST_A, 5000)
    t.same(await store.getBlob(DIGEST_A), {
      digest: DIGEST_A,
      size: 100,
      createdAt: 1000,
      lastAccess: 5000,
      hits: 2,
    })
    await store.touchBlob(DIGEST_A, 5500, 40)
    t.match(
      await store.getBlob(DIGEST_A),
      { lastAccess: 5500, hits: 42 },
      'hits batched into one touch',
    )
    await store.touchBlob(`sha256:${'d'.repeat(64)}`, 6000)
    t.equal(
      await store.getBlob(`sha256:${'d'.repeat(64)}`),
      undefined,
      'touching an unknown blob creates nothing',
    )
    t.same(
      (await store.leastRecentlyUsed(10)).map((r) => r.digest),
      [DIGEST_B, DIGEST_C, DIGEST_A],
    )
    t.same(
      (await store.leastRecentlyUsed(1)).map((r) => r.digest),
      [DIGEST_B],
    )
    t.same(await store.blobTotals(), { count: 3, bytes: 600 })
    await store.putBlob(DIGEST_B, 250, 7000)
    t.same(
      await store.blobTotals(),
      { count: 3, bytes: 650 },
      'replacing a record replaces its size',
    )
    await store.deleteBlob(DIGEST_C)
    await store.deleteBlob(DIGEST_C)
    t.equal(await store.getBlob(DIGEST_C), undefined)
    t.same(await store.blobTotals(), { count: 2, bytes: 350 })
    t.same(await store.leastRecentlyUsed(0), [])
  })

  t.test('pins: set and cleared, independent of the blob record', async (t) => {
    const store = await makeStore(t)
    t.same(await store.pinned(), new Set())
    await store.setPinned(DIGEST_A, true)
    await store.setPinned(DIGEST_B, true)
    await store.setPinned(DIGEST_B, true)
    t.same(await store.pinned(), new Set([DIGEST_A, DIGEST_B]), 'pinning twice is one pin')
    await store.putBlob(DIGEST_A, 100, 1000)
    await store.deleteBlob(DIGEST_A)
    t.ok((await store.pinned()).has(DIGEST_A), 'a pin outlives the record it covers')
    await store.setPinned(DIGEST_A, false)
    await store.setPinned(DIGEST_C, false)
    t.same(await store.pinned(), new Set([DIGEST_B]))
  })

  t.test('API tokens: stored by hash, listed, replaced, deleted; never collected', async (t) => {
    const store = await makeStore(t)
    const record = {
      id: 'aaaaaaaaaaaa',
      hash: 'a'.repeat(64),
      user: 'ci',
      groups: ['builders'],
      description: 'nightly',
      createdAt: 1000,
      expiresAt: 5000,
    }
    t.same(await store.listApiTokens(), [])
    await store.putApiToken(record)
    await store.putApiToken({ ...record, id: 'bbbbbbbbbbbb', hash: 'b'.repeat(64), groups: [] })
    t.same(await store.getApiToken('a'.repeat(64)), record)
    t.equal(await store.getApiToken('c'.repeat(64)), undefined)
    t.same((await store.listApiTokens()).map((r) => r.id).sort(), ['aaaaaaaaaaaa', 'bbbbbbbbbbbb'])
    await store.putApiToken({ ...record, description: 'renamed' })
    t.equal((await store.getApiToken('a'.repeat(64)))?.description, 'renamed')
    await store.collectUnused()
    t.equal((await store.listApiTokens()).length, 2, 'collection leaves tokens alone')
    await store.deleteApiToken('a'.repeat(64))
    await store.deleteApiToken('a'.repeat(64))
    t.same(
      (await store.listApiTokens()).map((r) => r.id),
      ['bbbbbbbbbbbb'],
    )
  })

  t.test('leases: one holder at a time, expiry, renew and release by the owner only', async (t) => {
    const store = await makeStore(t)
    t.equal(await store.leaseHolder('fill:x'), undefined, 'nobody holds a new lease')
    t.equal(await store.acquireLease('fill:x', 'replica-1', { ttlMs: 300 }), true)
    t.equal(await store.leaseHolder('fill:x'), 'replica-1', 'its holder is known')
    t.equal(
      await store.acquireLease('fill:x', 'replica-2', { ttlMs: 300 }),
      false,
      'held by someone else',
    )
    t.equal(
      await store.acquireLease('fill:x', 'replica-1', { ttlMs: 300 }),
      true,
      'the holder may take it again',
    )
    await store.releaseLease('fill:x', 'replica-2')
    t.equal(
      await store.acquireLease('fill:x', 'replica-2', { ttlMs: 300 }),
      false,
      'release by a non-owner does nothing',
    )
    await store.releaseLease('fill:x', 'replica-1')
    t.equal(
      await store.acquireLease('fill:x', 'replica-2', { ttlMs: 150 }),
      true,
      'free after release',
    )
    await sleep(300)
    t.equal(await store.leaseHolder('fill:x'), undefined, 'an expired lease has no holder')
    t.equal(
      await store.acquireLease('fill:x', 'replica-3', { ttlMs: 150 }),
      true,
      'free after expiry',
    )
  })

  t.test('200 concurrent mixed calls all resolve and leave consistent state', async (t) => {
    const store = await makeStore(t)
    const digest = (i: number) => `sha256:${i.toString(16).padStart(64, '0')}`
    await Promise.all(
      Array.from({ length: 200 }, async (_, i) => {
        switch (i % 4) {
          case 0:
            return store.putBlob(digest(i), i, i)
          case 1:
            return store.putDocument('pypi', `p${i}`, { fetchedAt: i, page: i })
          case 2:
            return store.putTag('r', `repo${i % 10}`, `t${i}`, tag(digest(i)))
          default:
            return store.getTag('r', 'repo1', 't1')
        }
      }),
    )
    t.equal((await store.blobTotals()).count, 50)
    const pages = await Promise.all(
      Array.from({ length: 50 }, (_, k) => store.getDocument('pypi', `p${4 * k + 1}`)),
    )
    t.same(
      pages.map((p) => p?.page),
      Array.from({ length: 50 }, (_, k) => 4 * k + 1),
    )
    t.equal((await store.listRepositories('r')).length, 5)
  })

  t.test('statistics: batches add up per hour and per day, with distinct clients', async (t) => {
    const store = await makeStore(t)
    const hour = Math.floor(Date.now() / HOUR_MS) * HOUR_MS
    await store.addUsage([
      usage(hour, 'docker', 'library/nginx', { hit: 3, bytesServed: 300 }, [
        '10.0.0.1',
        '10.0.0.2',
      ]),
      usage(hour, 'pypi', 'requests', { miss: 1, bytesServed: 50, bytesUpstream: 50 }, [
        '10.0.0.1',
      ]),
    ])
    await store.addUsage([
      usage(hour, 'docker', 'library/nginx', { miss: 1, bytesServed: 100, bytesUpstream: 100 }, [
        '10.0.0.2',
        '10.0.0.3',
      ]),
      usage(hour - HOUR_MS, 'docker', 'library/nginx', { stale: 2, bytesServed: 20 }, ['10.0.0.9']),
    ])
    await store.addUsage([])
    for (const granularity of ['hour', 'day'] as const) {
      const answer = await store.usage({ granularity, from: hour - 2 * DAY_MS })
      const nginx = answer.subjects.find((s) => s.subject === 'library/nginx')
      t.same(
        nginx?.counts,
        { ...ZERO_COUNTS, hit: 3, miss: 1, stale: 2, bytesServed: 420, bytesUpstream: 100 },
        `${granularity}: counts add up`,
      )
      t.equal(nginx?.clients, 4, `${granularity}: distinct clients over the buckets`)
      t.equal(nginx?.pool, 'docker.io')
      t.equal(nginx?.firstPulled, hour - HOUR_MS, 'first pulled: the earliest hour')
      t.equal(nginx?.lastPulled, hour + 10, 'last pulled: the latest pull')
      t.same(answer.clients, { all: 4, docker: 4, pypi: 1 }, `${granularity}: clients per protocol`)
      const requests = answer.subjects.find((s) => s.subject === 'requests')
      t.equal(requests?.protocol, 'pypi')
      t.equal(requests?.counts.bytesUpstream, 50)
    }
    const hourly = await store.usage({ granularity: 'hour', from: hour - 2 * DAY_MS })
    t.same(
      hourly.buckets.map((b) => [b.start - hour, b.protocol, b.counts.bytesServed]),
      [
        [-HOUR_MS, 'docker', 20],
        [0, 'docker', 400],
        [0, 'pypi', 50],
      ],
      'one bucket per hour and protocol, oldest first',
    )
    const lastHour = await store.usage({ granularity: 'hour', from: hour })
    t.equal(lastHour.subjects.find((s) => s.subject === 'library/nginx')?.counts.stale, 0)
  })

  t.test('statistics: buckets past their retention are dropped', async (t) => {
    const store = await makeStore(t)
    const hour = Math.floor(Date.now() / HOUR_MS) * HOUR_MS
    await store.addUsage([
      usage(hour - 8 * DAY_MS, 'docker', 'old/weekly', { hit: 1, bytesServed: 1 }, ['10.0.0.1']),
      usage(hour - 91 * DAY_MS, 'docker', 'old/gone', { hit: 1, bytesServed: 1 }, ['10.0.0.1']),
      usage(hour, 'docker', 'new/one', { hit: 1, bytesServed: 1 }, ['10.0.0.1']),
    ])
    const names = async (granularity: 'hour' | 'day') =>
      (await store.usage({ granularity, from: 0 })).subjects.map((s) => s.subject).sort()
    t.same(await names('hour'), ['new/one'], 'hourly buckets are kept 7 days')
    t.same(await names('day'), ['new/one', 'old/weekly'], 'daily buckets 90 days')
  })

  t.test('statistics: distinct clients are estimated within 5% at 2000 clients', async (t) => {
    const store = await makeStore(t)
    const hour = Math.floor(Date.now() / HOUR_MS) * HOUR_MS
    const clients = Array.from({ length: 2000 }, (_, i) => `10.${i >> 8}.${i & 255}.7`)
    await store.addUsage([
      usage(hour, 'docker', 'busy/app', { hit: 2000 }, clients.slice(0, 1200)),
      usage(hour - HOUR_MS, 'docker', 'busy/app', { hit: 1 }, clients.slice(800)),
    ])
    const answer = await store.usage({ granularity: 'hour', from: 0 })
    const estimate = answer.subjects[0]?.clients ?? 0
    t.ok(Math.abs(estimate - 2000) <= 100, `estimate ${estimate} for 2000 distinct clients`)
  })

  t.test('statistics: which subjects served an artifact, bounded per artifact', async (t) => {
    const store = await makeStore(t)
    const ref = (subject: string, reference?: string) =>
      ({ digest: DIGEST_A, protocol: 'docker', pool: 'docker.io', subject, reference }) as const
    await store.addReferences([ref('library/app', '1.0'), ref('library/app'), ref('org/other')])
    await store.addReferences([ref('library/app', '1.0')])
    await store.addReferences([
      {
        digest: DIGEST_B,
        protocol: 'pypi',
        pool: 'pypi',
        subject: 'lib',
        reference: 'lib-1.0.whl',
      },
    ])
    const found = await store.references([DIGEST_A, DIGEST_B, DIGEST_C])
    t.same(
      found.get(DIGEST_A)?.map((r) => [r.subject, r.reference]),
      [
        ['library/app', undefined],
        ['library/app', '1.0'],
        ['org/other', undefined],
      ],
      'each subject and tag once, sorted',
    )
    t.same(found.get(DIGEST_B), [
      {
        digest: DIGEST_B,
        protocol: 'pypi',
        pool: 'pypi',
        subject: 'lib',
        reference: 'lib-1.0.whl',
      },
    ])
    t.notOk(found.has(DIGEST_C), 'an artifact nobody pulled has no entry')
    await store.addReferences(
      Array.from({ length: MAX_REFERENCES_PER_ARTIFACT + 10 }, (_, i) => ref(`many/r${i}`)),
    )
    const bounded = (await store.references([DIGEST_A])).get(DIGEST_A) ?? []
    t.equal(bounded.length, MAX_REFERENCES_PER_ARTIFACT, 'at most MAX_REFERENCES_PER_ARTIFACT')
    t.ok(
      bounded.some((r) => r.subject === 'library/app'),
      'the first ones stay',
    )
  })

  t.test('a closed store rejects calls', async (t) => {
    const store = await makeStore(t)
    await store.ping()
    await store.close()
    await t.rejects(store.getTag('a', 'b', 'c'), MetadataClosedError)
    await t.rejects(store.putBlob(DIGEST_A, 1, 1), MetadataClosedError)
    await t.rejects(store.usage({ granularity: 'hour', from: 0 }), MetadataClosedError)
    await t.rejects(store.references([DIGEST_A]), MetadataClosedError)
    await t.rejects(
      store.addUsage([usage(0, 'docker', 'a/b', { hit: 1 }, [])]),
      MetadataClosedError,
    )
    await store.close()
  })
}

/** One subject's pulls in `hour` (last pulled 10 ms into it), on docker.io or pypi. */
function usage(
  hour: number,
  protocol: 'docker' | 'pypi',
  subject: string,
  counts: Partial<UsageDelta['counts']>,
  clients: string[],
): UsageDelta {
  return {
    hour,
    protocol,
    pool: protocol === 'docker' ? 'docker.io' : 'pypi',
    subject,
    counts: { ...ZERO_COUNTS, ...counts },
    clients,
    lastPulled: hour + 10,
  }
}
