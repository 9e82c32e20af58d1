/**
 * The aggregation of pull events and the questions asked of it, on the real
 * embedded store with a controlled clock, no HTTP: what counts as a pull, how
 * batches reach the store, what happens when the store fails, and how
 * subjects are rolled up, sorted and paged.
 */
import { mkdir, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { Registry } from 'prom-client'
import t, { type Test } from 'tap'
import { PullStatistics, STATS_MAX_PENDING_SUBJECTS } from '../../src/insight/pull-statistics.ts'
import { Statistics, namespaceOf } from '../../src/insight/statistics.ts'
import { FsMetadataStore } from '../../src/metadata/fs-store.ts'
import { HOUR_MS } from '../../src/metadata/statistics.ts'
import { createLogger } from '../../src/observability/logger.ts'
import { createMetrics } from '../../src/observability/metrics.ts'
import type { PullEventFields } from '../../src/observability/pull-event.ts'
import { LogCapture } from '../helpers/log-capture.ts'
import { tempDir } from '../helpers/config.ts'

/** 10:30 on some day: the clock every test starts at. */
const START = 1_800_000_000_000 - (1_800_000_000_000 % HOUR_MS) + HOUR_MS / 2

async function setUp(t: Test) {
  const dir = join(await tempDir(t), 'meta')
  let now = START
  const clock = () => now
  const metadata = await FsMetadataStore.open(dir, { now: clock })
  t.teardown(() => metadata.close())
  const logs = new LogCapture()
  const metrics = createMetrics(new Registry(), { defaultMetrics: false })
  const pulls = new PullStatistics({
    metadata,
    logger: createLogger({ level: 'debug', destination: logs }),
    metrics,
    now: clock,
  })
  return {
    dir,
    pulls,
    metrics,
    logs,
    statistics: new Statistics(metadata, clock),
    advance: (ms: number) => {
      now += ms
    },
  }
}

function event(fields: Partial<PullEventFields> = {}): PullEventFields {
  return {
    protocol: 'docker',
    pool: 'docker.io',
    subject: 'library/nginx',
    reference: 'latest',
    action: 'get',
    cache: 'hit',
    bytes: 100,
    durationMs: 1,
    clientIp: '10.0.0.1',
    ...fields,
  }
}

t.test('GETs count by cache result, HEADs do not; bytes split by source', async (t) => {
  const { pulls, statistics } = await setUp(t)
  pulls.record(event({ cache: 'miss', bytes: 1000 }))
  pulls.record(event({ cache: 'hit', bytes: 1000, clientIp: '10.0.0.2' }))
  pulls.record(event({ cache: 'stale', bytes: 10 }))
  pulls.record(event({ cache: 'revalidated', bytes: 5 }))
  pulls.record(event({ action: 'head', bytes: 0, clientIp: '10.0.0.3' }))
  const before = await statistics.totals(HOUR_MS)
  t.equal(before.all.pulls.total, 0, 'nothing reaches the store before a flush')
  await pulls.flush()
  const after = await statistics.totals(HOUR_MS)
  t.same(after.docker.pulls, { hit: 1, miss: 1, stale: 1, revalidated: 1, total: 4 })
  t.equal(after.docker.hitRatio, 0.5, 'hit and stale out of four')
  t.equal(after.docker.bytesServed, 2015)
  t.equal(after.docker.bytesFromUpstream, 1005, 'miss and revalidated came from upstream')
  t.equal(after.docker.bytesFromCache, 1010)
  t.equal(after.docker.clients, 2, 'the HEAD-only client is not counted')
  t.equal(after.pypi.hitRatio, null, 'no pulls: no ratio')
})

t.test('windows: 1 h covers the current and the previous clock hour, 24 h more', async (t) => {
  const { pulls, statistics, advance } = await setUp(t)
  pulls.record(event())
  advance(-3 * HOUR_MS)
  pulls.record(event())
  advance(3 * HOUR_MS)
  await pulls.flush()
  t.equal((await statistics.totals(HOUR_MS)).all.pulls.total, 1)
  t.equal((await statistics.totals(24 * HOUR_MS)).all.pulls.total, 2)
  const series = await statistics.series(24 * HOUR_MS)
  t.same(
    series.map((p) => [(p.start - START + HOUR_MS / 2) / HOUR_MS, p.usage.pulls.total]),
    [
      [-3, 1],
      [0, 1],
    ],
    'one point per hour with pulls',
  )
})

t.test('subjects: rolled up per namespace, sorted, filtered and paged', async (t) => {
  const { pulls, statistics } = await setUp(t)
  const pull = (
    subject: string,
    times: number,
    bytes: number,
    protocol: 'docker' | 'pypi' = 'docker',
  ) => {
    for (let i = 0; i < times; i++)
      pulls.record(
        event({ subject, bytes, protocol, pool: protocol === 'docker' ? 'docker.io' : 'pypi' }),
      )
  }
  pull('library/nginx', 5, 10)
  pull('library/redis', 2, 1000)
  pull('myorg/team/app', 3, 1)
  pull('requests', 4, 1, 'pypi')
  await pulls.flush()
  const query = {
    protocol: 'docker' as const,
    rollup: 'subject' as const,
    windowMs: HOUR_MS,
    limit: 2,
    offset: 0,
  }
  const byPulls = await statistics.subjects({ ...query, sort: 'pulls' })
  t.same(
    byPulls.rows.map((r) => r.name),
    ['library/nginx', 'myorg/team/app'],
  )
  t.equal(byPulls.total, 3, 'pypi projects are not repositories')
  const second = await statistics.subjects({ ...query, sort: 'pulls', offset: 2 })
  t.same(
    second.rows.map((r) => r.name),
    ['library/redis'],
  )
  const byBytes = await statistics.subjects({ ...query, sort: 'bytes' })
  t.same(
    byBytes.rows.map((r) => r.name),
    ['library/redis', 'library/nginx'],
  )
  const prefixed = await statistics.subjects({ ...query, sort: 'pulls', prefix: 'library/' })
  t.equal(prefixed.total, 2)
  const namespaces = await statistics.subjects({ ...query, sort: 'pulls', rollup: 'namespace' })
  t.same(
    namespaces.rows.map((r) => [r.name, r.pulls.total, r.bytesServed]),
    [
      ['library', 7, 2050],
      ['myorg', 3, 3],
    ],
  )
  t.equal(namespaceOf({ protocol: 'pypi', pool: 'tuna', subject: 'requests' }), 'tuna')
})

t.test('a failed flush keeps its batch for the next one, and warns once', async (t) => {
  const { dir, pulls, statistics, logs } = await setUp(t)
  // A directory where the statistics file goes: writes fail until it is gone.
  await mkdir(join(dir, 'statistics.json.tmp', 'x'), { recursive: true })
  pulls.record(event({ bytes: 7 }))
  await pulls.flush()
  pulls.record(event({ bytes: 8 }))
  await pulls.flush()
  const warnings = logs.lines.filter((l) =>
    String(l.msg).startsWith('could not store pull statistics'),
  )
  t.equal(warnings.length, 1, 'one warning for the outage')
  t.equal((await statistics.totals(HOUR_MS)).all.pulls.total, 0)
  await rm(join(dir, 'statistics.json.tmp'), { recursive: true })
  await pulls.flush()
  const totals = await statistics.totals(HOUR_MS)
  t.equal(totals.all.pulls.total, 2, 'both pulls arrive once the store works')
  t.equal(totals.all.bytesServed, 15)
  t.ok(logs.lines.some((l) => l.msg === 'statistics stored again'))
})

t.test('pulls counted while a failing flush runs, and after it, all arrive', async (t) => {
  const { dir, pulls, statistics } = await setUp(t)
  await mkdir(join(dir, 'statistics.json.tmp', 'x'), { recursive: true })
  pulls.record(event({ bytes: 1 }))
  const failing = pulls.flush()
  pulls.record(event({ bytes: 2 }))
  await failing
  pulls.record(event({ bytes: 4 }))
  await rm(join(dir, 'statistics.json.tmp'), { recursive: true })
  await pulls.flush()
  const totals = await statistics.totals(HOUR_MS)
  t.equal(totals.all.pulls.total, 3)
  t.equal(totals.all.bytesServed, 7, 'none lost to the subject-hour the last pull went to')
})

t.test('pending subjects are bounded while the store fails; the excess is counted', async (t) => {
  const { dir, pulls, metrics, statistics } = await setUp(t)
  await mkdir(join(dir, 'statistics.json.tmp', 'x'), { recursive: true })
  for (let i = 0; i < STATS_MAX_PENDING_SUBJECTS + 5; i++)
    pulls.record(event({ subject: `r/${i}` }))
  await pulls.flush()
  pulls.record(event({ subject: 'r/late' }))
  await pulls.flush()
  const dropped = (await metrics.statisticsDropped.get()).values[0]?.value
  t.equal(dropped, 6, 'five over the bound, then one new subject while still failing')
  await rm(join(dir, 'statistics.json.tmp'), { recursive: true })
  await pulls.flush()
  t.equal((await statistics.totals(HOUR_MS)).all.pulls.total, STATS_MAX_PENDING_SUBJECTS)
})

t.test('close flushes what is pending; the store keeps it across a restart', async (t) => {
  const dir = join(await tempDir(t), 'meta')
  const first = await FsMetadataStore.open(dir)
  const logs = new LogCapture()
  const deps = {
    logger: createLogger({ level: 'debug', destination: logs }),
    metrics: createMetrics(new Registry(), { defaultMetrics: false }),
    now: Date.now,
  }
  const pulls = new PullStatistics({ ...deps, metadata: first })
  pulls.start()
  pulls.record(event({ bytes: 42 }))
  await pulls.close()
  await first.close()
  const second = await FsMetadataStore.open(dir)
  t.teardown(() => second.close())
  const totals = await new Statistics(second, Date.now).totals(HOUR_MS)
  t.equal(totals.all.bytesServed, 42)
})
