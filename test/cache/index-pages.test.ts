/**
 * Index pages as records: negative answers stay out of the metadata store and
 * in a bounded in-memory cache, parsed pages in memory are bounded by bytes,
 * and revalidation follows the configured mirror order.
 */
import { readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import t, { type Test } from 'tap'
import { request } from 'undici'
import { IndexPages, type IndexPageSource } from '../../src/cache/index-pages.ts'
import { NEGATIVE_CACHE_MAX_ENTRIES } from '../../src/cache/negative-cache.ts'
import { FsMetadataStore } from '../../src/metadata/fs-store.ts'
import type { MetadataStore } from '../../src/metadata/store.ts'
import { createLogger } from '../../src/observability/logger.ts'
import { NEGATIVE_TTL_MS } from '../../src/pypi/pages.ts'
import { PypiRemote } from '../../src/pypi/remote.ts'
import { startApp } from '../helpers/app.ts'
import { tempDir } from '../helpers/config.ts'
import { fakeUpstream, notFound, type FakeUpstream } from '../helpers/fake-upstream.ts'
import { LogCapture } from '../helpers/log-capture.ts'
import { poolConfig, testPool } from '../helpers/pool.ts'
import { startPypiUpstream, type PypiUpstream } from '../helpers/pypi-upstream.ts'
import { startRedis } from '../helpers/redis-server.ts'

const INDEX_TTL_MS = 60_000
/** Names a client made up. */
const UNKNOWN_NAMES = 300

async function status(url: string): Promise<number> {
  const res = await request(url)
  await res.body.dump()
  return res.statusCode
}

/** The app in front of `upstreams` (index URLs, in this order), with a clock the test moves. */
async function pypiApp(t: Test, upstreams: { index: string }[], extra = '', indexLines = '') {
  const clock = { now: Date.now() }
  const app = await startApp(t, {
    yaml: `pypi:
  indexes:
    - name: pypi
      default: true
      indexTTL: ${INDEX_TTL_MS}ms
      upstreams: [${upstreams.map((u) => `{ url: "${u.index}" }`).join(', ')}]
      retry: { attempts: 1 }
      breaker: { failures: 100 }
${indexLines}${extra}`,
    deps: { now: () => clock.now },
  })
  return { app, clock }
}

/** An index that has no projects at all. */
async function emptyIndex(t: Test) {
  const upstream = await fakeUpstream(t, notFound)
  return { upstream, index: `${upstream.url}/simple/` }
}

/** Asks for UNKNOWN_NAMES made-up projects twice; returns the names. */
async function askForUnknownProjects(t: Test, url: string, upstream: FakeUpstream) {
  const names = Array.from(
    { length: UNKNOWN_NAMES },
    (_, i) => `nope-${i}-${Math.random().toString(36).slice(2, 10)}`,
  )
  for (let round = 0; round < 2; round++) {
    for (const name of names) {
      const code = await status(`${url}/simple/${name}/`)
      if (code !== 404) t.fail(`${name}: ${code}`)
    }
  }
  const asked = names.map((name) => upstream.count(`/simple/${name}/`))
  t.ok(
    asked.every((n) => n === 1),
    'within the negative TTL each name reached the upstream once',
  )
  return names
}

t.test(
  'random unknown projects leave no page records in the embedded store, and are remembered a minute',
  async (t) => {
    const { upstream, index } = await emptyIndex(t)
    const { app, clock } = await pypiApp(t, [{ index }])
    const names = await askForUnknownProjects(t, app.url, upstream)
    t.same(await readdir(join(app.storagePath, 'meta', 'pages')), [], 'meta/pages is empty')
    const negatives = app.app.services.pages.negatives.size
    t.ok(negatives <= NEGATIVE_CACHE_MAX_ENTRIES, `${negatives} negative answers held in memory`)
    clock.now += NEGATIVE_TTL_MS + 1
    const name = names[0] ?? ''
    t.equal(await status(`${app.url}/simple/${name}/`), 404)
    t.equal(upstream.count(`/simple/${name}/`), 2, 'asked again once the negative TTL passed')
  },
)

t.test('random unknown projects leave no keys in Redis', async (t) => {
  const redis = await startRedis(t)
  const { upstream, index } = await emptyIndex(t)
  const { app } = await pypiApp(
    t,
    [{ index }],
    `metadata: { redis: { url: "${redis.url}", connectTimeout: 2s, commandTimeout: 2s } }\n`,
  )
  await askForUnknownProjects(t, app.url, upstream)
  const client = new Redis(redis.url, { lazyConnect: true })
  await client.connect()
  t.teardown(() => client.disconnect())
  // The one key a running replica always holds: the lease of the leader of scheduled work.
  t.same(await client.keys('*'), ['pullthrough:lease:leader'], 'no key for any of the names')
})

t.test('onUpstreamNotFound drop: a project gone upstream loses its cached page', async (t) => {
  const upstream = await startPypiUpstream(t)
  const { app, clock } = await pypiApp(t, [upstream], '', '      onUpstreamNotFound: drop\n')
  t.equal(await status(`${app.url}/simple/lib/`), 200)
  t.equal((await readdir(join(app.storagePath, 'meta', 'pages'))).length, 1)
  upstream.notFound('/simple/lib/')
  clock.now += INDEX_TTL_MS + 1
  t.equal(await status(`${app.url}/simple/lib/`), 404)
  t.same(await readdir(join(app.storagePath, 'meta', 'pages')), [], 'no page left to serve stale')
  upstream.clearFaults()
  t.equal(await status(`${app.url}/simple/lib/`), 404, 'remembered for the negative TTL')
  clock.now += NEGATIVE_TTL_MS + 1
  t.equal(await status(`${app.url}/simple/lib/`), 200, 'and found again after it')
})

/** The store, counting page reads per project. */
function countingStore(store: MetadataStore): { store: MetadataStore; reads: Map<string, number> } {
  const reads = new Map<string, number>()
  const wrapper = new Proxy(store, {
    get(target, property) {
      if (property === 'getDocument' || property === 'readDocument') {
        return (index: string, project: string) => {
          reads.set(project, (reads.get(project) ?? 0) + 1)
          return target[property](index, project)
        }
      }
      const value: unknown = Reflect.get(target, property, target)
      return typeof value === 'function' ? (value as () => unknown).bind(target) : value
    },
  })
  return { store: wrapper, reads }
}

/** A mirror's name in logs and pull events: its URL without the trailing slash. */
function mirrorName(upstream: PypiUpstream): string {
  return upstream.index.replace(/\/+$/, '')
}

t.test('pages held in memory are bounded by their size in bytes, not their number', async (t) => {
  const upstream = await startPypiUpstream(t)
  const { pool } = testPool(t, poolConfig([upstream.index]))
  const metadata = await FsMetadataStore.open(join(await tempDir(t), 'meta'))
  t.teardown(() => metadata.close())
  const logger = createLogger({ level: 'silent', destination: new LogCapture() })
  const source = (project: string): IndexPageSource => ({
    remote: new PypiRemote(pool, 'pypi'),
    index: 'pypi',
    project,
    ttlMs: INDEX_TTL_MS,
    negativeTtlMs: NEGATIVE_TTL_MS,
    keepOnNotFound: false,
  })
  const parse = (page: { body: Buffer }) => JSON.parse(page.body.toString()) as unknown
  // Fill the store once and learn how big each page is there.
  const loader = new IndexPages({ metadata, logger, now: Date.now })
  for (const project of ['lib', 'app']) await loader.get(source(project), parse)
  const lib = (await metadata.readDocument('pypi', 'lib'))?.bytes ?? 0
  const app = (await metadata.readDocument('pypi', 'app'))?.bytes ?? 0
  t.ok(lib > 0 && app > 0, `pages of ${lib} and ${app} bytes`)

  // Room for the bigger page, not for both: a page read after the other was loaded comes from the store again.
  const { store, reads } = countingStore(metadata)
  const pages = new IndexPages({
    metadata: store,
    logger,
    now: Date.now,
    memoryBytes: Math.max(lib, app) + Math.floor(Math.min(lib, app) / 2),
  })
  for (const project of ['lib', 'app', 'lib', 'app', 'lib'])
    t.equal((await pages.get(source(project), parse)).cache, 'hit')
  t.equal(reads.get('lib'), 3, 'lib was pushed out by app every time')
  t.equal(reads.get('app'), 2)
  t.equal(upstream.count('/simple/lib/'), 1, 'from the store, not the upstream')

  // With room for both, each is read from the store once.
  const roomy = countingStore(metadata)
  const both = new IndexPages({
    metadata: roomy.store,
    logger,
    now: Date.now,
    memoryBytes: lib + app,
  })
  for (const project of ['lib', 'app', 'lib', 'app', 'lib']) await both.get(source(project), parse)
  t.same(Object.fromEntries(roomy.reads), { lib: 1, app: 1 })
})

t.test(
  'a page fetched from the fallback mirror is revalidated against the first mirror once it is back',
  async (t) => {
    const first = await startPypiUpstream(t)
    const second = await startPypiUpstream(t)
    const { app, clock } = await pypiApp(t, [first, second])
    await first.stop()
    t.equal(await status(`${app.url}/simple/lib/`), 200)
    t.equal(second.count('/simple/lib/'), 1, 'the fallback gave the page (and its ETag)')

    await first.start()
    clock.now += INDEX_TTL_MS + 1
    t.equal(await status(`${app.url}/simple/lib/`), 200)
    const asked = first.requestsTo('/simple/lib/')
    t.equal(asked.length, 1, 'the first mirror is asked again')
    t.equal(asked[0]?.headers['if-none-match'], undefined, "without the fallback's ETag")
    t.equal(second.count('/simple/lib/'), 1, 'the fallback is not asked again')

    clock.now += INDEX_TTL_MS + 1
    t.equal(await status(`${app.url}/simple/lib/`), 200)
    const again = first.requestsTo('/simple/lib/')
    t.equal(again.length, 2)
    t.ok(again[1]?.headers['if-none-match'], "revalidated with the first mirror's own ETag")
    t.equal(second.count('/simple/lib/'), 1)
    const pulls = app.logs.lines.filter((l) => l.msg === 'pull')
    t.match(pulls, [
      { cache: 'miss', upstream: mirrorName(second) },
      { cache: 'miss', upstream: mirrorName(first) },
      { cache: 'revalidated', upstream: mirrorName(first) },
    ])
  },
)

t.test(
  'the ETag goes only to its mirror: when that mirror fails, the next gets a plain GET',
  async (t) => {
    const first = await startPypiUpstream(t)
    const second = await startPypiUpstream(t)
    const { app, clock } = await pypiApp(t, [first, second])
    t.equal(await status(`${app.url}/simple/lib/`), 200)
    first.fail('/simple/lib/', 503)
    clock.now += INDEX_TTL_MS + 1
    t.equal(await status(`${app.url}/simple/lib/`), 200)
    t.ok(first.requestsTo('/simple/lib/')[1]?.headers['if-none-match'], 'revalidation was tried')
    const fallback = second.requestsTo('/simple/lib/')
    t.equal(fallback.length, 1)
    t.equal(
      fallback[0]?.headers['if-none-match'],
      undefined,
      "the first mirror's ETag stays with it",
    )
  },
)
