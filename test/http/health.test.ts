import { rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { startApp } from '../helpers/app.ts'

t.test('/healthz answers 200 while the process runs', async (t) => {
  const { url } = await startApp(t)
  const res = await fetch(`${url}/healthz`)
  t.equal(res.status, 200)
  t.same(await res.json(), { status: 'ok' })
  t.equal(res.headers.get('cache-control'), 'no-store')
})

t.test('/readyz answers 200 when storage is writable and the embedded store answers', async (t) => {
  const { url } = await startApp(t)
  const res = await fetch(`${url}/readyz`)
  t.equal(res.status, 200)
  t.same(await res.json(), { status: 'ready', checks: { storage: 'ok', metadata: 'ok' } })
})

t.test(
  '/readyz answers 503 with the reason when the storage path cannot be written, and recovers',
  async (t) => {
    const { url, storagePath } = await startApp(t)
    // Root ignores permission bits, so make the temp area impossible to write into instead.
    await rm(join(storagePath, 'tmp'), { recursive: true, force: true })
    await writeFile(join(storagePath, 'tmp'), 'not a directory')
    const res = await fetch(`${url}/readyz`)
    t.equal(res.status, 503)
    const body = (await res.json()) as { status: string; checks: Record<string, string> }
    t.equal(body.status, 'unavailable')
    t.equal(body.checks.metadata, 'ok')
    t.match(body.checks.storage, /^failed: PT_STORAGE_WRITE$/)
    t.notMatch(JSON.stringify(body), storagePath, 'the reason does not reveal filesystem paths')

    await rm(join(storagePath, 'tmp'))
    const { mkdir } = await import('node:fs/promises')
    await mkdir(join(storagePath, 'tmp'))
    t.equal((await fetch(`${url}/readyz`)).status, 200)
  },
)

t.test('unknown routes answer 404 with a JSON error', async (t) => {
  const { url } = await startApp(t)
  const res = await fetch(`${url}/nothing/here?x=1`)
  t.equal(res.status, 404)
  t.same(await res.json(), { error: 'PT_NOT_FOUND', message: 'no route for GET /nothing/here' })
})

t.test(
  'closing the app while a fill is running stops the transfer and does not hang',
  async (t) => {
    const { fakeUpstream } = await import('../helpers/fake-upstream.ts')
    const { drain, randomBlob } = await import('../helpers/streams.ts')
    const blob = randomBlob(4 * 1024 * 1024)
    const up = await fakeUpstream(t, (_req, res) => {
      res.writeHead(200, { 'content-length': String(blob.data.length) })
      res.write(blob.data.subarray(0, 1024 * 1024))
      // and stalls
    })
    const { app } = await startApp(t, {
      yaml: `docker: { registries: [{ name: docker.io, default: true, upstreams: [{ url: "${up.url}" }] }] }\n`,
    })
    const pool = app.services.registries.get('docker.io')
    if (!pool) throw new Error('no pool')
    const served = await app.services.cache.serve(blob.digest, { pool, path: 'blob' })
    const started = Date.now()
    const reading = drain(served.body)
    await app.close()
    t.ok(Date.now() - started < 5000, `closed in ${Date.now() - started} ms`)
    t.ok((await reading).error, 'the client of the unfinished fill is cut')
  },
)
