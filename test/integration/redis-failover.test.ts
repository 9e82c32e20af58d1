/**
 * Redis high availability with real parts: a primary, a replica and three
 * redis-sentinel processes, pullthrough reaching Redis through the sentinels.
 * The primary is killed (SIGKILL) during steady pulls: cached content is
 * served the whole time, and metadata writes resume once the sentinels have
 * promoted the replica. The recovery time is measured and logged.
 */
import { join } from 'node:path'
import { Redis } from 'ioredis'
import t from 'tap'
import { request } from 'undici'
import { startApp } from '../helpers/app.ts'
import { tempDir } from '../helpers/config.ts'
import { buildImage } from '../helpers/images.ts'
import { MASTER_NAME, startSentinels } from '../helpers/redis-sentinel.ts'
import { startRegistry } from '../helpers/registry.ts'

/** Bound on the whole failover: what the issue allows. */
const RECOVERY_LIMIT_MS = 30_000
const PULL_EVERY_MS = 50

t.test('the primary dies: pulls go on, writes resume after promotion', async (t) => {
  const sentinels = await startSentinels(t)
  const registry = await startRegistry(t)
  const dir = await tempDir(t, 'pt-failover-')
  const image = await buildImage(join(dir, 'oci'), { layers: [64 * 1024], tag: 'v1' })
  await registry.pushImage(image, 'library/app:v1')
  const app = await startApp(t, {
    yaml: `docker:
  registries:
    - { name: docker.io, default: true, upstreams: [{ url: "${registry.url}" }], tagTTL: 1h }
pypi: { indexes: [] }
metadata:
  redis:
    # With sentinels the URL gives only the password and database.
    url: redis://unused/0
    commandTimeout: 500ms
    sentinels:
      masterName: ${MASTER_NAME}
      addresses: [${sentinels.addresses.join(', ')}]
`,
  })
  const layer = image.manifests[0]!.layers[0]!.digest
  const urls = [
    `${app.url}/v2/library/app/manifests/v1`,
    `${app.url}/v2/library/app/blobs/${layer}`,
  ]
  const pull = async (url: string) => {
    const res = await request(url, {
      headers: { accept: 'application/vnd.oci.image.manifest.v1+json' },
    })
    await res.body.dump()
    return res.statusCode
  }
  for (const url of urls) t.equal(await pull(url), 200, 'cached before the failover')
  const store = app.app.deps.metadata
  const record = (n: number) => ({
    digest: image.manifests[0]!.digest,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    size: 1,
    fetchedAt: n,
  })
  await store.putTag('docker.io', 'library/probe', 'before', record(1))
  // Replication is asynchronous: a write the replica has not received dies with the primary.
  // Only what reached the replica can be expected to survive, so wait for it to get there.
  const primary = new Redis(sentinels.primary.url, { maxRetriesPerRequest: 0 })
  try {
    t.equal(await primary.wait(1, 5_000), 1, 'the replica has the write before the kill')
  } finally {
    primary.disconnect()
  }

  await sentinels.primary.kill()
  const killedAt = Date.now()
  const failed: string[] = []
  let pulls = 0
  let recoveredAt: number | undefined
  while (Date.now() - killedAt < RECOVERY_LIMIT_MS) {
    for (const url of urls) {
      pulls++
      const status = await pull(url)
      if (status !== 200) failed.push(`${status} ${url} at +${Date.now() - killedAt} ms`)
    }
    const wrote = await store
      .putTag('docker.io', 'library/probe', 'after', record(Date.now()))
      .then(() => true)
      .catch(() => false)
    if (wrote) {
      recoveredAt = Date.now()
      break
    }
    await new Promise((resolve) => setTimeout(resolve, PULL_EVERY_MS))
  }
  t.same(failed, [], `${pulls} pulls of cached content during the failover, all served`)
  t.ok(recoveredAt, 'metadata writes resumed')
  const recoveryMs = (recoveredAt ?? Infinity) - killedAt
  t.comment(`writes resumed ${recoveryMs} ms after the primary was killed`)
  t.ok(recoveryMs < RECOVERY_LIMIT_MS, `recovered in ${recoveryMs} ms`)
  // The other sentinels learn of the promotion a moment later, and the client
  // reconnects once more when they announce it: wait for both to settle.
  t.ok(await sentinels.settled(sentinels.replica.port), 'every sentinel names the promoted replica')
  const settleBy = Date.now() + 10_000
  let before: number | undefined
  while (before === undefined && Date.now() < settleBy) {
    before = await store
      .getTag('docker.io', 'library/probe', 'before')
      .then((tag) => tag?.fetchedAt)
      .catch(() => undefined)
    if (before === undefined) await new Promise((resolve) => setTimeout(resolve, 100))
  }
  t.equal(before, 1, 'what was written before survived')
  for (const url of urls) t.equal(await pull(url), 200, 'and after')
})
