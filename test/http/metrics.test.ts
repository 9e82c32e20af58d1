import t from 'tap'
import { startApp } from '../helpers/app.ts'

t.test(
  '/metrics exposes pullthrough_ metrics, Node defaults included, in Prometheus text format',
  async (t) => {
    const { url } = await startApp(t)
    await fetch(`${url}/healthz`)
    await fetch(`${url}/does-not-exist`)
    const res = await fetch(`${url}/metrics`)
    t.equal(res.status, 200)
    t.match(res.headers.get('content-type'), /^text\/plain; version=0\.0\.4/)
    const text = await res.text()
    t.match(
      text,
      /^pullthrough_process_cpu_user_seconds_total \d/m,
      'Node default metrics carry the prefix',
    )
    t.match(text, /^pullthrough_nodejs_heap_size_used_bytes \d/m)
    t.match(
      text,
      /^pullthrough_http_requests_total\{protocol="ops",route="\/healthz",method="GET",status="200"\} 1$/m,
    )
    t.match(
      text,
      /^pullthrough_http_requests_total\{protocol="none",route="unmatched",method="GET",status="404"\} 1$/m,
    )
    t.match(text, /^pullthrough_cache_max_size_bytes 53687091200$/m)
    for (const name of [
      'digest_mismatch_total',
      'storage_corruptions_total',
      'statistics_dropped_total',
      'upstream_failovers_total',
      'evictions_total',
      'fills_in_flight',
      'cache_size_bytes',
    ]) {
      t.match(text, new RegExp(`^# TYPE pullthrough_${name} `, 'm'), name)
    }
    t.notMatch(text, /^(?!#)(?!pullthrough_)\w+/m, 'every sample is prefixed')
  },
)

t.test('requests are counted by route template, method and status; timed by route', async (t) => {
  const { url } = await startApp(t)
  await fetch(`${url}/healthz`, { method: 'HEAD' })
  await fetch(`${url}/simple/Not_Normal/`, { redirect: 'manual' })
  await fetch(`${url}/simple/-bad-/`)
  await fetch(`${url}/nope`, { method: 'DELETE' })
  const text = await (await fetch(`${url}/metrics`)).text()
  t.match(
    text,
    /^pullthrough_http_requests_total\{protocol="ops",route="\/healthz",method="HEAD",status="200"\} 1$/m,
    'a HEAD of a GET route, by its own method',
  )
  t.match(
    text,
    /^pullthrough_http_requests_total\{protocol="pypi",route="\/simple\/:project\/",method="GET",status="301"\} 1$/m,
  )
  t.match(
    text,
    /^pullthrough_http_requests_total\{protocol="pypi",route="\/simple\/:project\/",method="GET",status="404"\} 1$/m,
    'an error a route answers is that route’s',
  )
  t.match(
    text,
    /^pullthrough_http_requests_total\{protocol="none",route="unmatched",method="DELETE",status="404"\} 1$/m,
  )
  t.match(
    text,
    /^pullthrough_http_request_duration_seconds_count\{protocol="pypi",route="\/simple\/:project\/"\} 2$/m,
  )
  t.match(
    text,
    /^pullthrough_http_request_duration_seconds_count\{protocol="none",route="unmatched"\} 1$/m,
  )
})
