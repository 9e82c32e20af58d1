import { pino } from 'pino'
import t from 'tap'
import { ProjectUnknownError } from '../../src/cache/errors.ts'
import {
  Freshness,
  type FreshnessPolicy,
  type Kept,
  type Loaded,
} from '../../src/cache/freshness.ts'
import { MetadataUnavailableError } from '../../src/metadata/errors.ts'
import { UpstreamAuthError, UpstreamUnavailableError } from '../../src/upstream/errors.ts'
import { LogCapture } from '../helpers/log-capture.ts'

const TTL_MS = 60_000
const NOT_FOUND_TTL_MS = 10_000
const KEY = 'pypi requests'

type Age = 'none' | 'fresh' | 'expired' | 'fresh, blob gone'
type Upstream = 'same' | 'new value' | 'not found' | 'unavailable' | 'auth refused'
type Store = 'ok' | 'read fails' | 'write fails'

/** A metadata store of one record, a counting remote, and the engine between them. */
function setup(age: Age, upstream: Upstream, store: Store = 'ok') {
  const clock = { now: 1_000_000 }
  const logs = new LogCapture()
  const engine = new Freshness({ logger: pino(logs), now: () => clock.now })
  const state = {
    record:
      age === 'none'
        ? undefined
        : ({
            fetchedAt: clock.now - (age === 'expired' ? TTL_MS : 1),
            value: 'v1',
          } as Kept<string>),
    gone: age === 'fresh, blob gone',
    loads: 0,
    writes: 0,
    removes: 0,
  }
  let upstreamNow = upstream
  const unavailable = () => new MetadataUnavailableError('fs', 'test')
  const policy: FreshnessPolicy<string, string> = {
    key: KEY,
    ttlMs: TTL_MS,
    what: 'index page',
    read: async () => {
      if (store === 'read fails') throw unavailable()
      return state.record
    },
    write: async (kept) => {
      if (store === 'write fails') throw unavailable()
      state.writes++
      state.record = kept
      state.gone = false
    },
    remove: async () => {
      state.removes++
      state.record = undefined
    },
    serve: (kept) => (state.gone ? undefined : kept.value),
    load: async (previous): Promise<Loaded<string, string>> => {
      state.loads++
      const fetchedAt = clock.now
      switch (upstreamNow) {
        case 'same':
          // The upstream confirms what the previous record holds (304, same digest).
          if (previous && !state.gone)
            return { kept: { ...previous, fetchedAt }, cache: 'revalidated', upstream: 'm1' }
          return { kept: { fetchedAt, value: 'v1' }, cache: 'miss', upstream: 'm1' }
        case 'new value':
          return { kept: { fetchedAt, value: 'v2' }, cache: 'miss', upstream: 'm1' }
        case 'not found':
          throw new ProjectUnknownError('pypi', 'requests')
        case 'unavailable':
          throw new UpstreamUnavailableError('pypi', [])
        case 'auth refused':
          throw new UpstreamAuthError('pypi', 'm1', 403)
      }
    },
    notFound: {
      ttlMs: NOT_FOUND_TTL_MS,
      matches: (error) => error instanceof ProjectUnknownError,
      error: () => new ProjectUnknownError('pypi', 'requests'),
    },
  }
  const serve = async () => {
    try {
      const { served, cache } = await engine.readThrough(policy)
      return `${served} ${cache}`
    } catch (error) {
      return (error as { code?: string }).code ?? String(error)
    }
  }
  const setUpstream = (next: Upstream) => {
    upstreamNow = next
  }
  return { clock, logs, engine, policy, state, serve, setUpstream }
}

/** [record age, upstream answers, served (value + cache, or error code), upstream calls, records written] */
const table: [Age, Upstream, string, number, number][] = [
  ['none', 'same', 'v1 miss', 1, 1],
  ['none', 'new value', 'v2 miss', 1, 1],
  ['none', 'not found', 'PT_PROJECT_UNKNOWN', 1, 0],
  ['none', 'unavailable', 'PT_UPSTREAM_UNAVAILABLE', 1, 0],
  ['none', 'auth refused', 'PT_UPSTREAM_AUTH', 1, 0],
  ['fresh', 'same', 'v1 hit', 0, 0],
  ['fresh', 'new value', 'v1 hit', 0, 0],
  ['fresh', 'not found', 'v1 hit', 0, 0],
  ['fresh', 'unavailable', 'v1 hit', 0, 0],
  ['fresh', 'auth refused', 'v1 hit', 0, 0],
  ['fresh, blob gone', 'same', 'v1 miss', 1, 1],
  ['fresh, blob gone', 'unavailable', 'PT_UPSTREAM_UNAVAILABLE', 1, 0],
  ['expired', 'same', 'v1 revalidated', 1, 1],
  ['expired', 'new value', 'v2 miss', 1, 1],
  ['expired', 'not found', 'PT_PROJECT_UNKNOWN', 1, 0],
  ['expired', 'unavailable', 'v1 stale', 1, 0],
  ['expired', 'auth refused', 'v1 stale', 1, 0],
]

for (const [age, upstream, served, loads, writes] of table) {
  t.test(`record ${age}, upstream ${upstream}: serves ${served}`, async (t) => {
    const { state, serve } = setup(age, upstream)
    t.equal(await serve(), served)
    t.equal(state.loads, loads, 'upstream calls')
    t.equal(state.writes, writes, 'records written')
    if (upstream === 'not found' && age === 'expired') t.equal(state.removes, 1, 'record dropped')
  })
}

t.test(
  'a metadata store that fails to read: logged once with the key, loaded from upstream',
  async (t) => {
    const { state, serve, logs } = setup('fresh', 'new value', 'read fails')
    t.equal(await serve(), 'v2 miss')
    t.equal(state.loads, 1)
    const failures = logs.lines.filter((l) => l.msg === 'could not read the cached index page')
    t.equal(failures.length, 1)
    t.equal(failures[0]?.key, KEY)
  },
)

t.test(
  'a metadata store that fails to write: logged once, still served, loaded again next time',
  async (t) => {
    const { state, serve, logs } = setup('none', 'new value', 'write fails')
    t.equal(await serve(), 'v2 miss')
    const failures = logs.lines.filter((l) => l.msg === 'could not store the index page')
    t.equal(failures.length, 1)
    t.equal(failures[0]?.key, KEY)
    t.equal(await serve(), 'v2 miss', 'nothing was kept')
    t.equal(state.loads, 2)
  },
)

t.test('a stale serve is logged, writes nothing, and the next request asks again', async (t) => {
  const { state, serve, logs, setUpstream } = setup('expired', 'unavailable')
  t.equal(await serve(), 'v1 stale')
  t.equal(await serve(), 'v1 stale')
  t.equal(state.writes, 0)
  t.equal(state.loads, 2, 'a stale copy does not count as fresh')
  t.equal(
    logs.lines.filter((l) => l.msg === 'every upstream failed; serving the cached index page stale')
      .length,
    2,
  )
  setUpstream('same')
  t.equal(await serve(), 'v1 revalidated', 'back to normal once the upstream answers')
})

t.test('N concurrent callers on a cold key share one load', async (t) => {
  const { state, policy, engine } = setup('none', 'new value')
  let release = () => {}
  const gate = new Promise<void>((resolve) => (release = resolve))
  const load = policy.load.bind(policy)
  const slow = { ...policy, load: async (p: Kept<string> | undefined) => (await gate, load(p)) }
  const callers = Array.from({ length: 8 }, () => engine.readThrough(slow))
  release()
  const served = await Promise.all(callers)
  t.same(
    served.map((s) => `${s.served} ${s.cache}`),
    Array.from({ length: 8 }, () => 'v2 miss'),
  )
  t.equal(state.loads, 1)
  t.equal(state.writes, 1)
})

t.test('a not-found is remembered for the negative TTL, then asked again', async (t) => {
  const { state, serve, clock } = setup('none', 'not found')
  t.equal(await serve(), 'PT_PROJECT_UNKNOWN')
  clock.now += NOT_FOUND_TTL_MS - 1
  t.equal(await serve(), 'PT_PROJECT_UNKNOWN')
  t.equal(state.loads, 1, 'no second load within the negative TTL')
  clock.now += 1
  t.equal(await serve(), 'PT_PROJECT_UNKNOWN')
  t.equal(state.loads, 2)
})

t.test('a fallback record is served stale when the key has none it may serve', async (t) => {
  const { engine, policy, state } = setup('expired', 'unavailable')
  const fallback = { fetchedAt: 0, value: 'canonical' }
  const narrow = { ...policy, staleable: () => false, fallback }
  const served = await engine.readThrough(narrow)
  t.same([served.served, served.cache], ['canonical', 'stale'])
  t.equal(state.loads, 1)
})

t.test(
  'a streamed load: the loader gets its stream at once, waiting callers the stored copy',
  async (t) => {
    const { engine, policy, clock } = setup('none', 'new value')
    let store: (kept: Kept<string> | undefined) => void = () => {}
    let loads = 0
    const streamed: FreshnessPolicy<string, string> = {
      ...policy,
      serve: (kept, cache) => `${kept.value} from disk (${cache})`,
      load: async () => {
        loads++
        const kept = new Promise<Kept<string> | undefined>((resolve) => (store = resolve))
        return { kept, cache: 'miss', served: 'teed stream', upstream: 'm1' }
      },
    }
    const first = await engine.readThrough(streamed)
    t.equal(first.served, 'teed stream', 'not held back until stored')
    const waiting = engine.readThrough(streamed)
    await new Promise(setImmediate)
    store({ fetchedAt: clock.now, value: 'v2' })
    t.equal((await waiting).served, 'v2 from disk (miss)')
    t.equal(loads, 1)

    // A stream that could not be stored: the caller that waited loads for itself.
    const cold = { ...streamed, key: 'another', read: async () => undefined }
    await engine.readThrough(cold)
    const waiter = engine.readThrough(cold)
    await new Promise(setImmediate)
    t.equal(loads, 2, 'it waits on the running load')
    store(undefined)
    t.equal((await waiter).served, 'teed stream')
    t.equal(loads, 3)
  },
)

t.test('onUpstreamNotFound keep: a kept record is served stale, never dropped', async (t) => {
  const { engine, policy, state, clock } = setup('expired', 'not found')
  const keeping = { ...policy, notFound: { ...policy.notFound!, keep: true } }
  const serve = async () => {
    const { served, cache } = await engine.readThrough(keeping)
    return `${served} ${cache}`
  }
  t.equal(await serve(), 'v1 stale')
  t.equal(state.removes, 0, 'the record stays')
  t.equal(state.writes, 0, 'and is not renewed')
  clock.now += NOT_FOUND_TTL_MS - 1
  t.equal(await serve(), 'v1 stale')
  t.equal(state.loads, 1, 'the upstream is not asked again within the negative TTL')
  clock.now += 1
  t.equal(await serve(), 'v1 stale')
  t.equal(state.loads, 2, 'then it is')

  const fresh = setup('none', 'not found')
  const none = { ...fresh.policy, notFound: { ...fresh.policy.notFound!, keep: true } }
  await t.rejects(fresh.engine.readThrough(none), { code: 'PT_PROJECT_UNKNOWN' })
  await t.rejects(
    fresh.engine.readThrough(none),
    { code: 'PT_PROJECT_UNKNOWN' },
    'nothing kept: not found, remembered',
  )
  t.equal(fresh.state.loads, 1)
})

t.test('refresh ahead: a hit past 80% of the TTL revalidates in the background', async (t) => {
  const { engine, policy, state, clock } = setup('fresh', 'same')
  const ahead = { ...policy, refreshAhead: true }
  const serve = async () => {
    const { served, cache } = await engine.readThrough(ahead)
    return `${served} ${cache}`
  }
  clock.now += Math.floor(TTL_MS * 0.5)
  t.equal(await serve(), 'v1 hit')
  await engine.idle()
  t.equal(state.loads, 0, 'half-way through its TTL: nothing to do')
  clock.now += Math.ceil(TTL_MS * 0.3)
  t.equal(await serve(), 'v1 hit', 'served at once, as a hit')
  t.equal(await serve(), 'v1 hit')
  await engine.idle()
  t.equal(state.loads, 1, 'one background revalidation for both hits')
  t.equal(state.writes, 1, 'the record is renewed')
  clock.now += Math.floor(TTL_MS * 0.5)
  t.equal(await serve(), 'v1 hit', 'still fresh where it would have expired')
  await engine.idle()
  t.equal(state.loads, 1)

  const plain = setup('fresh', 'same')
  plain.clock.now += Math.ceil(TTL_MS * 0.9)
  await plain.engine.readThrough(plain.policy)
  await plain.engine.idle()
  t.equal(plain.state.loads, 0, 'not without refreshAhead')

  const down = setup('fresh', 'unavailable')
  down.clock.now += Math.ceil(TTL_MS * 0.9)
  t.equal((await down.engine.readThrough({ ...down.policy, refreshAhead: true })).cache, 'hit')
  await down.engine.idle()
  t.equal(down.state.writes, 0, 'a failed refresh writes nothing; the record stays until its TTL')
})
