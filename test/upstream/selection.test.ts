import t from 'tap'
import { EXPLORE_SHARE, MirrorStats, rankMirrors } from '../../src/upstream/selection.ts'

function mirror(name: string, ttfbMs?: number, mbPerS?: number, available = true) {
  const stats = new MirrorStats()
  if (ttfbMs !== undefined) stats.recordTtfb(ttfbMs)
  if (mbPerS !== undefined) stats.recordTransfer(mbPerS * 1e6, 1000)
  return { name, stats, isAvailable: () => available }
}

const names = (list: { name: string }[]) => list.map((m) => m.name)
const noExplore = () => 0.99

t.test('ordered keeps the configured order and puts open circuits last', async (t) => {
  const ms = [mirror('a', 500), mirror('b', 10, undefined, false), mirror('c', 1)]
  t.same(names(rankMirrors(ms, 'ordered')), ['a', 'c', 'b'])
})

t.test('fastest prefers the mirror with the best latency and throughput', async (t) => {
  // USTC-like: low latency but slow; TUNA-like: a bit more latency, much faster.
  const ms = [mirror('slow-link', 20, 1), mirror('fast-link', 80, 50), mirror('far', 900, 50)]
  t.same(names(rankMirrors(ms, 'fastest', noExplore)), ['fast-link', 'far', 'slow-link'])
})

t.test('fastest tries unmeasured mirrors first so each gets measured', async (t) => {
  const ms = [mirror('measured', 10, 100), mirror('new')]
  t.same(names(rankMirrors(ms, 'fastest', noExplore)), ['new', 'measured'])
})

t.test('fastest sends a small share of requests to another mirror first', async (t) => {
  const ms = [mirror('best', 10, 100), mirror('second', 50, 100), mirror('third', 90, 100)]
  let firstNotBest = 0
  let seed = 1
  // A deterministic pseudo-random sequence, bounded run.
  const random = () => (seed = (seed * 16807) % 2147483647) / 2147483647
  const runs = 10_000
  for (let i = 0; i < runs; i++)
    if (rankMirrors(ms, 'fastest', random)[0]?.name !== 'best') firstNotBest++
  const share = firstNotBest / runs
  t.ok(share > EXPLORE_SHARE * 0.7 && share < EXPLORE_SHARE * 1.3, `explored ${share}`)
})

t.test('the moving average follows a mirror that slows down', async (t) => {
  const stats = new MirrorStats()
  stats.recordTtfb(10)
  for (let i = 0; i < 10; i++) stats.recordTtfb(1000)
  t.ok((stats.ttfbMs ?? 0) > 900)
  stats.recordTransfer(100, 1)
  t.equal(stats.bytesPerMs, undefined, 'tiny bodies are not throughput samples')
})
