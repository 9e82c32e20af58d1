import t from 'tap'
import { Registry } from 'prom-client'
import { BatchedCounter } from '../../src/observability/batched-counter.ts'

const exported = async (registry: Registry) => await registry.metrics()

t.test('what a series counts is what a scrape and get() show', async (t) => {
  const registry = new Registry()
  const counter = new BatchedCounter({
    name: 'test_bytes_total',
    help: 'bytes',
    labelNames: ['source'],
    registers: [registry],
  })
  const cache = counter.series({ source: 'cache' })
  const upstream = counter.series({ source: 'upstream' })
  cache.inc(100)
  cache.inc(50)
  upstream.inc()
  t.match(await exported(registry), 'test_bytes_total{source="cache"} 150')
  t.match(await exported(registry), 'test_bytes_total{source="upstream"} 1')
  cache.inc(25)
  const values = (await counter.get()).values
  t.same(
    values.map((v) => [v.labels.source, v.value]),
    [
      ['cache', 175],
      ['upstream', 1],
    ],
    'counted again after a scrape, and nothing twice',
  )
  counter.inc({ source: 'cache' }, 5)
  t.match(await exported(registry), 'test_bytes_total{source="cache"} 180', 'inc() still adds')
})

t.test('a series counted only by 0 shows, as a labelled inc(0) does', async (t) => {
  const registry = new Registry()
  const counter = new BatchedCounter({
    name: 'test_zero_total',
    help: 'zero',
    labelNames: ['protocol'],
    registers: [registry],
  })
  counter.series({ protocol: 'pypi' })
  counter.series({ protocol: 'docker' }).inc(0)
  const text = await exported(registry)
  t.match(text, 'test_zero_total{protocol="docker"} 0')
  t.notMatch(text, 'protocol="pypi"', 'a series never counted does not')
})

t.test('a counter only grows by a finite amount', async (t) => {
  const counter = new BatchedCounter({ name: 'test_grow_total', help: 'grow', registers: [] })
  const series = counter.series({})
  t.throws(() => series.inc(-1), TypeError)
  t.throws(() => series.inc(Number.NaN), TypeError)
  t.throws(() => series.inc(Number.POSITIVE_INFINITY), TypeError)
  series.inc(2)
  t.equal((await counter.get()).values[0]?.value, 2, 'a refused increment counts nothing')
})
