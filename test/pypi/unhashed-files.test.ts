/**
 * Files an index lists without a sha256: nothing vouches for their bytes, so
 * they are kept per project and source URL, only for the index's indexTTL,
 * and no larger than storage.maxBlobSize.
 */
import { readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import t, { type Test } from 'tap'
import { startApp } from '../helpers/app.ts'
import { fakeUpstream } from '../helpers/fake-upstream.ts'
import { getOrCut } from '../helpers/http.ts'

const MiB = 1024 * 1024
const INDEX_TTL_MS = 60_000
const WHEEL = 'shared-1.0-py3-none-any.whl'

/** Fault injection: an index whose pages give no hashes; `files` maps paths to bodies. */
async function setup(t: Test, files: Record<string, Buffer | 'chunked' | 'declared'>) {
  const upstream = await fakeUpstream(t, async (req, res) => {
    const page = /^\/simple\/([a-z]+)\/$/.exec(req.url ?? '')
    if (page) {
      const links = Object.keys(files)
        .filter((path) => path.startsWith(`/files/${page[1]}/`))
        .map((path) => `<a href="${path}">${path.split('/').pop()}</a>`)
      res.writeHead(200, { 'content-type': 'text/html' })
      return res.end(links.join('\n'))
    }
    const body = files[req.url ?? '']
    if (body === undefined) return res.writeHead(404).end()
    if (Buffer.isBuffer(body)) {
      res.writeHead(200, { 'content-length': String(body.length) })
      return res.end(body)
    }
    res.writeHead(200, body === 'declared' ? { 'content-length': String(2 * MiB) } : {})
    const chunk = Buffer.alloc(64 * 1024, 1)
    for (let sent = 0; sent < 2 * MiB && !res.destroyed; sent += chunk.length)
      if (!res.write(chunk)) await new Promise((resolve) => res.once('drain', resolve))
    return res.end()
  })
  const clock = { now: Date.now() }
  const app = await startApp(t, {
    yaml: `storage: { maxBlobSize: 1MiB }
pypi: { indexes: [{ name: pypi, default: true, indexTTL: ${INDEX_TTL_MS}ms, upstreams: [{ url: "${upstream.url}/simple/" }], retry: { attempts: 1 } }] }
`,
    deps: { now: () => clock.now },
  })
  return { upstream, app, clock }
}

/** Waits until the load of the file is committed (it is stored just after the last byte went out). */
async function settled(app: Awaited<ReturnType<typeof setup>>['app'], size: number) {
  for (let i = 0; i < 200; i++) {
    if ((await app.app.deps.metadata.blobTotals()).bytes >= size) return
    await sleep(20)
  }
}

t.test('two projects listing one filename at different URLs get their own bytes', async (t) => {
  const alpha = Buffer.from('alpha wheel bytes')
  const beta = Buffer.from('beta wheel bytes, another file')
  const { app, upstream } = await setup(t, {
    [`/files/alpha/${WHEEL}`]: alpha,
    [`/files/beta/${WHEEL}`]: beta,
  })
  const first = await getOrCut(`${app.url}/pypi/pypi/files/alpha/_/${WHEEL}`)
  t.ok(first.body.equals(alpha))
  await settled(app, alpha.length)
  const second = await getOrCut(`${app.url}/pypi/pypi/files/beta/_/${WHEEL}`)
  t.equal(second.status, 200)
  t.ok(second.body.equals(beta), "beta's own file, not alpha's kept under the same filename")
  t.equal(upstream.count(`/files/beta/${WHEEL}`), 1)
})

t.test('a file without a sha256 is fetched again after indexTTL', async (t) => {
  const alpha = Buffer.from('alpha wheel bytes')
  const { app, upstream, clock } = await setup(t, { [`/files/alpha/${WHEEL}`]: alpha })
  const url = `${app.url}/pypi/pypi/files/alpha/_/${WHEEL}`
  t.ok((await getOrCut(url)).body.equals(alpha))
  await settled(app, alpha.length)
  t.ok((await getOrCut(url)).body.equals(alpha))
  t.equal(upstream.count(`/files/alpha/${WHEEL}`), 1, 'kept within indexTTL')
  clock.now += INDEX_TTL_MS + 1
  t.ok((await getOrCut(url)).body.equals(alpha))
  t.equal(upstream.count(`/files/alpha/${WHEEL}`), 2, 'fetched again after indexTTL')
})

t.test('a file over storage.maxBlobSize is refused or cut, and nothing is stored', async (t) => {
  const { app, upstream } = await setup(t, {
    [`/files/big/big-1.0.tar.gz`]: 'chunked',
    [`/files/big/declared-1.0.tar.gz`]: 'declared',
  })
  const cut = await getOrCut(`${app.url}/pypi/pypi/files/big/_/big-1.0.tar.gz`)
  t.ok(cut.cut || cut.status !== 200, `no complete body (status ${cut.status})`)
  t.ok(cut.body.length <= MiB)
  const declared = await getOrCut(`${app.url}/pypi/pypi/files/big/_/declared-1.0.tar.gz`)
  t.equal(declared.status, 502, 'a declared Content-Length over the cap is refused')
  t.equal(upstream.count('/files/big/'), 2)
  let temps: string[] = []
  for (let i = 0; i < 100; i++) {
    temps = await readdir(join(app.storagePath, 'tmp'))
    if (temps.length === 0) break
    await sleep(20)
  }
  t.same(temps, [], 'the partial download was discarded')
  t.equal((await app.app.deps.metadata.blobTotals()).count, 0, 'nothing stored')
  const logs = app.logs.raw.join('\n')
  t.match(logs, /upstream document cut at the size limit/)
  t.match(logs, /upstream document over the size limit/)
})
