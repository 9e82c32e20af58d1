/**
 * The legacy JSON API (`/pypi/<project>/json`): file URLs never come from the
 * request's Host (absolute under server.publicUrl, else relative), and a
 * document is fetched once per indexTTL however many clients ask, stored, and
 * streamed from disk.
 */
import { createHash, randomBytes } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import t, { type Test } from 'tap'
import { request } from 'undici'
import { rewriteLegacyJson } from '../../src/pypi/rewrite-legacy-json.ts'
import { startApp } from '../helpers/app.ts'
import { fakeUpstream } from '../helpers/fake-upstream.ts'
import { startPypiUpstream } from '../helpers/pypi-upstream.ts'
import { drain, readAll } from '../helpers/streams.ts'

const MiB = 1024 * 1024
const INDEX_TTL_MS = 60_000
const SPOOFED = { host: 'evil.example', 'x-forwarded-host': 'evil2.example' }

interface LegacyDoc {
  urls: { url: string; filename: string }[]
  releases: Record<string, { url: string; filename: string }[]>
}

async function getJson(url: string, headers: Record<string, string> = {}) {
  const res = await request(url, { headers })
  const text = await res.body.text()
  return { status: res.statusCode, text, doc: JSON.parse(text) as LegacyDoc }
}

async function withRealIndex(t: Test, server: string) {
  const upstream = await startPypiUpstream(t)
  const app = await startApp(t, {
    yaml: `server: { trustProxy: true${server} }
pypi: { indexes: [{ name: pypi, default: true, upstreams: [{ url: "${upstream.index}" }], fileHosts: ["${upstream.files.origin}"] }] }
`,
  })
  return { app, upstream }
}

t.test('file URLs are relative without server.publicUrl, whatever Host says', async (t) => {
  const { app } = await withRealIndex(t, '')
  const { status, text, doc } = await getJson(`${app.url}/pypi/lib/json`, SPOOFED)
  t.equal(status, 200)
  t.notMatch(text, /evil/, 'neither Host nor X-Forwarded-Host is reflected')
  const all = [...doc.urls, ...Object.values(doc.releases).flat()]
  t.ok(all.length > 0)
  for (const file of all) t.match(file.url, /^\.\.\/pypi\/files\/lib\/[a-f0-9]{64}\//)
  // Relative to the document: it resolves to a URL that serves the file.
  const resolved = new URL(all[0]!.url, `${app.url}/pypi/lib/json`)
  const res = await request(resolved)
  await res.body.dump()
  t.equal(res.statusCode, 200, resolved.pathname)
})

t.test('file URLs are absolute under server.publicUrl, whatever Host says', async (t) => {
  const { app } = await withRealIndex(t, ', publicUrl: "https://cache.example.com/pt/"')
  const { text, doc } = await getJson(`${app.url}/pypi/lib/json`, SPOOFED)
  t.notMatch(text, /evil/)
  const all = [...doc.urls, ...Object.values(doc.releases).flat()]
  t.ok(all.length > 0)
  for (const file of all)
    t.match(file.url, /^https:\/\/cache\.example\.com\/pt\/pypi\/pypi\/files\/lib\/[a-f0-9]{64}\//)
})

/** A legacy JSON document of about `bytes`, its files on the upstream's own origin. */
function bigDocument(origin: string, bytes: number): Buffer {
  const releases: Record<string, unknown[]> = {}
  const padding = randomBytes(96).toString('hex')
  let size = 0
  for (let v = 0; size < bytes; v++) {
    const files = Array.from({ length: 20 }, (_, i) => {
      const filename = `big-${v}.${i}-py3-none-any.whl`
      const sha256 = createHash('sha256').update(filename).digest('hex')
      return {
        filename,
        url: `${origin}/files/${filename}`,
        digests: { sha256, md5: sha256.slice(0, 32) },
        packagetype: 'bdist_wheel',
        comment_text: padding,
      }
    })
    releases[`${v}.0`] = files
    size += JSON.stringify(files).length
  }
  return Buffer.from(JSON.stringify({ info: { name: 'big' }, urls: [], releases }))
}

t.test(
  'concurrent requests for a large document make one upstream request, and later ones hit the cache',
  async (t) => {
    let document: Buffer = Buffer.alloc(0)
    let failing = false
    let release: () => void = () => undefined
    const released = new Promise<void>((resolve) => (release = resolve))
    // Fault injection: a slow upstream (all requests arrive while the first is in flight), later down.
    const upstream = await fakeUpstream(t, async (req, res) => {
      if (failing) return res.writeHead(503).end()
      if (!/^\/pypi\/big\/(?:[^/]+\/)?json$/.test(req.url ?? '')) return res.writeHead(404).end()
      await released
      res.writeHead(200, {
        'content-type': 'application/json',
        'content-length': String(document.length),
      })
      return res.end(document)
    })
    document = bigDocument(upstream.origin, 27 * MiB)
    const clock = { now: Date.now() }
    const app = await startApp(t, {
      yaml: `pypi: { indexes: [{ name: pypi, default: true, indexTTL: ${INDEX_TTL_MS}ms, upstreams: [{ url: "${upstream.url}/simple/" }], retry: { attempts: 1 } }] }\n`,
      deps: { now: () => clock.now },
    })
    const url = `${app.url}/pypi/big/json`
    const fetchAll = async (count: number) =>
      Promise.all(
        Array.from({ length: count }, async () => {
          const res = await request(url)
          return { status: res.statusCode, ...(await drain(res.body)) }
        }),
      )

    global.gc?.()
    const baseline = process.memoryUsage.rss()
    let peak = baseline
    const sampler = setInterval(() => {
      peak = Math.max(peak, process.memoryUsage.rss())
    }, 25)
    t.teardown(() => clearInterval(sampler))
    const answers = fetchAll(8)
    for (let i = 0; i < 200 && upstream.count('/pypi/big/') === 0; i++) await sleep(10)
    await sleep(300)
    release()
    const first = await answers
    clearInterval(sampler)
    const growthMiB = (peak - baseline) / MiB
    t.comment(
      `8 concurrent GETs of a ${(document.length / MiB).toFixed(1)} MiB document: peak RSS +${growthMiB.toFixed(0)} MiB`,
    )
    t.equal(upstream.count('/pypi/big/'), 1, 'one upstream request for all eight')
    t.ok(first.every((r) => r.status === 200 && r.error === undefined))
    t.equal(new Set(first.map((r) => r.digest)).size, 1, 'all eight got the same document')
    t.ok(first[0]!.bytes > 20 * MiB)
    // One parsed copy and its rewrite, not eight: the review measured +256 MiB for eight before.
    t.ok(growthMiB < 120, `peak RSS growth ${growthMiB.toFixed(0)} MiB`)

    const again = await fetchAll(3)
    t.ok(again.every((r) => r.digest === first[0]!.digest))
    t.equal(upstream.count('/pypi/big/'), 1, 'within indexTTL: from the cache')

    failing = true
    clock.now += INDEX_TTL_MS + 1
    const stale = await fetchAll(1)
    t.equal(stale[0]!.status, 200, 'every upstream down: served stale')
    t.equal(stale[0]!.digest, first[0]!.digest)
    t.equal(upstream.count('/pypi/big/'), 2)

    failing = false
    const versioned = await getJson(`${app.url}/pypi/big/1.0/json`)
    t.match(
      versioned.doc.releases['1.0']?.[0]?.url,
      /^\.\.\/\.\.\/pypi\/files\/big\/[a-f0-9]{64}\/big-1\.0-py3-none-any\.whl$/,
      'a version document sits one level deeper',
    )
  },
)

t.test('the document is checked as JSON while it is rewritten, across any chunking', async (t) => {
  const doc = JSON.stringify(
    {
      info: { name: 'x', description: '<script>alert(1)</script> & "quoted" \\ é', n: [1, -2.5e3] },
      urls: [
        { filename: 'keep', url: 'https://files.example/keep', extra: '<b>' },
        { filename: 'drop', url: 'https://evil.example/drop' },
      ],
      releases: { '1.0': [{ filename: 'drop' }, { filename: 'keep' }], '2.0': 'not a list' },
    },
    null,
    1,
  )
  const rewrite = (file: Record<string, unknown>) =>
    file.filename === 'keep' ? { ...file, url: 'rewritten' } : undefined
  const run = async (pieces: string[]) => {
    const stream = rewriteLegacyJson(rewrite)
    const out = readAll(stream)
    for (const piece of pieces) stream.write(Buffer.from(piece))
    stream.end()
    return (await out).toString()
  }
  const whole = await run([doc])
  t.notMatch(whole, /[<>&]/, 'markup escaped')
  t.notMatch(whole, 'evil.example')
  t.same(JSON.parse(whole), {
    info: { name: 'x', description: '<script>alert(1)</script> & "quoted" \\ é', n: [1, -2500] },
    urls: [{ filename: 'keep', url: 'rewritten', extra: '<b>' }],
    releases: { '1.0': [{ filename: 'keep', url: 'rewritten' }], '2.0': [] },
  })
  let same = true
  for (let at = 1; at < doc.length; at += 7)
    same &&= (await run([doc.slice(0, at), doc.slice(at)])) === whole
  t.ok(same, 'the same output however the input is split')

  for (const bad of ['<html>', '[]', '{"a":1,}', '{"a":01}', '{"a":"\\x"}', '{"urls":[{}', '{}x']) {
    const failed = await run([bad]).then(
      () => undefined,
      (error: unknown) => error,
    )
    t.match(failed, { code: 'PT_PYPI_DOCUMENT_INVALID' }, bad)
  }
})

t.test('an upstream answering something other than JSON is never relayed', async (t) => {
  const upstream = await fakeUpstream(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/html' })
    res.end('<html><script>INTERNAL-SECRET</script></html>')
  })
  const app = await startApp(t, {
    yaml: `pypi: { indexes: [{ name: pypi, default: true, upstreams: [{ url: "${upstream.url}/simple/" }], retry: { attempts: 1 } }] }\n`,
  })
  const res = await request(`${app.url}/pypi/x/json`)
  const body = await res.body.text().catch(() => '')
  t.not(res.statusCode === 200 && body !== '', true, `no body served (status ${res.statusCode})`)
  t.notMatch(body, 'INTERNAL-SECRET')
})
