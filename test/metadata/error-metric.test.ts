/**
 * pullthrough_metadata_errors_total{store} counts the metadata store's
 * failures, as an operator reads it on /metrics, for both stores.
 */
import { rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { request } from 'undici'
import { startApp } from '../helpers/app.ts'
import { startPypiUpstream } from '../helpers/pypi-upstream.ts'
import { startRedis } from '../helpers/redis-server.ts'

/** The counter's value for `store` on /metrics (0 when absent). */
async function metadataErrors(url: string, store: string): Promise<number> {
  const res = await request(`${url}/metrics`)
  const text = await res.body.text()
  const line = new RegExp(`^pullthrough_metadata_errors_total\\{store="${store}"\\} (\\S+)$`, 'm')
  return Number(line.exec(text)?.[1] ?? 0)
}

t.test('Redis going away moves pullthrough_metadata_errors_total{store="redis"}', async (t) => {
  const redis = await startRedis(t)
  const { url } = await startApp(t, {
    yaml: `metadata: { redis: { url: "${redis.url}", connectTimeout: 500ms, commandTimeout: 500ms } }\n`,
  })
  t.equal((await request(`${url}/readyz`)).statusCode, 200)
  t.equal(await metadataErrors(url, 'redis'), 0, 'no errors while Redis answers')
  await redis.kill()
  const ready = await request(`${url}/readyz`)
  await ready.body.dump()
  t.equal(ready.statusCode, 503)
  t.ok((await metadataErrors(url, 'redis')) >= 1, 'the failed readiness check counted')
})

t.test('an embedded store that cannot write pages moves the counter for "fs"', async (t) => {
  const upstream = await startPypiUpstream(t)
  const { url, storagePath } = await startApp(t, {
    yaml: `pypi: { indexes: [{ name: pypi, default: true, upstreams: [{ url: "${upstream.index}" }] }] }\n`,
  })
  t.equal(await metadataErrors(url, 'fs'), 0)
  // Root ignores permissions: a file where the directory was fails for everyone.
  const pages = join(storagePath, 'meta', 'pages')
  await rm(pages, { recursive: true })
  await writeFile(pages, 'not a directory')
  const page = await request(`${url}/simple/lib/`)
  await page.body.dump()
  t.equal(page.statusCode, 200, 'the client is still served')
  t.equal(await metadataErrors(url, 'fs'), 2, 'the failed read and the failed write')
})
