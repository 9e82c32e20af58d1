/**
 * The app with storage.s3 against a real S3-compatible server (s3rver): skopeo
 * pulls through it from a real registry, the blobs land in the bucket (a
 * multipart upload for the large layer) and nowhere under storage.path, warm
 * GETs and Ranges are served from the bucket, gc deletes the objects of
 * blobs nobody pulled, and a body that fails its digest never reaches the bucket.
 * Export reads a bundle from the bucket and import stages into another prefix.
 * Eviction and the scrub (`pullthrough verify`) delete objects as they
 * delete files, and a bucket that does not answer stops the start.
 * With storage.s3.redirect, warm GETs answer 307 to a presigned URL that
 * undici and skopeo follow to the bucket.
 */
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { Agent, interceptors, request } from 'undici'
import { buildApp } from '../../src/app.ts'
import { digestOf } from '../../src/storage/digest.ts'
import { startApp } from '../helpers/app.ts'
import { cliAgainst } from '../helpers/bundle.ts'
import { cleanEnv, runCli } from '../helpers/cli.ts'
import { tempDir, testConfig } from '../helpers/config.ts'
import { fakeUpstream, serveBytes } from '../helpers/fake-upstream.ts'
import { freePort } from '../helpers/free-port.ts'
import { metricSum } from '../helpers/http.ts'
import { buildImage, pullImage } from '../helpers/images.ts'
import { startRegistry } from '../helpers/registry.ts'
import { S3RVER_KEY, startS3rver, type S3rver } from '../helpers/s3rver.ts'
import { drain, randomBlob } from '../helpers/streams.ts'
import { filesUnder } from '../storage/fixtures/disk.ts'

const MiB = 1024 * 1024
const DAY_MS = 86_400_000
const HITS = 'pullthrough_cache_requests_total{protocol="docker",pool="docker.io",result="hit"}'
const TOKEN = 's3-test-admin-token-0123456'
const PREFIX = 'cache/'

function storageYaml(s3: S3rver, prefix = PREFIX): string {
  return `storage:
  s3:
    bucket: ${s3.bucket}
    endpoint: "${s3.endpoint}"
    pathStyle: true
    prefix: ${prefix}
    partSize: 5MiB
    credentials: { accessKeyId: ${S3RVER_KEY.accessKeyId}, secretAccessKey: ${S3RVER_KEY.secretAccessKey} }
`
}

/** docker.io served from one upstream. */
function dockerYaml(url: string): string {
  return `docker: { registries: [{ name: docker.io, default: true, upstreams: [{ url: "${url}" }] }] }\n`
}

/** The digests the bucket holds, read without pullthrough. */
async function inBucket(s3: S3rver, prefix = PREFIX): Promise<string[]> {
  return (await s3.keys(`${prefix}blobs/sha256/`)).map((k) => `sha256:${k.split('/').pop() ?? ''}`)
}

t.test(
  'a pull through an S3-backed cache stores, serves and collects blobs in the bucket',
  async (t) => {
    const s3 = await startS3rver(t)
    const registry = await startRegistry(t)
    const imageDir = await tempDir(t, 'pt-img-')
    const image = await buildImage(imageDir, { layers: [4096, 6 * MiB + 123] })
    const pushed = await registry.pushImage(image, 'library/app:1.0')
    const manifest = pushed.manifests[0]
    if (!manifest) throw new Error('no manifest pushed')
    const [small, large] = manifest.layers
    if (small === undefined || large === undefined) throw new Error('two layers expected')
    let offset = 0
    const app = await startApp(t, {
      yaml: `${storageYaml(s3)}${dockerYaml(registry.url)}retention: { unusedFor: 1d }
admin: { token: "${TOKEN}" }
`,
      deps: { now: () => Date.now() + offset },
    })
    const host = new URL(app.url).host
    await pullImage(t, `${host}/app:1.0`, join(await tempDir(t, 'pt-out-'), 'first'))
    await app.app.services.cache.settled()

    const stored = await inBucket(s3)
    for (const digest of [small, large, manifest.config, manifest.digest])
      t.ok(stored.includes(digest), `${digest} is in the bucket`)
    t.same(
      (await filesUnder(app.storagePath)).filter(
        (f) => !f.includes(`${join(app.storagePath, 'meta')}/`),
      ),
      [],
      'nothing under storage.path but the metadata store: no blob, no temp file',
    )

    const hex = large.slice('sha256:'.length)
    const content = await readFile(join(imageDir, 'blobs', 'sha256', hex))
    const hitsBefore = await metricSum(app.url, HITS)
    const warm = await request(`${app.url}/v2/library/app/blobs/${large}`)
    t.equal(warm.statusCode, 200)
    t.same(await drain(warm.body), { bytes: content.length, digest: large, error: undefined })
    const ranged = await request(`${app.url}/v2/library/app/blobs/${large}`, {
      headers: { range: 'bytes=5242800-5242999' },
    })
    t.equal(ranged.statusCode, 206)
    t.ok(Buffer.from(await ranged.body.arrayBuffer()).equals(content.subarray(5242800, 5243000)))
    t.equal((await metricSum(app.url, HITS)) - hitsBefore, 2, 'both answered from the bucket')

    // Two days later nobody pulled anything: gc deletes every unused blob's object.
    offset = 2 * DAY_MS
    const gc = await request(`${app.url}/-/api/v1/gc`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      body: '{}',
    })
    t.equal(gc.statusCode, 200)
    t.match(await gc.body.json(), { dryRun: false, unused: { count: 4 } })
    t.same(await inBucket(s3), [], 'the bucket is empty')
    const gone = await request(`${app.url}/v2/library/app/blobs/${large}`)
    t.equal(gone.statusCode, 200, 'a pull after gc fills the blob again')
    t.same(await drain(gone.body), { bytes: content.length, digest: large, error: undefined })
    await app.app.services.cache.settled()
    t.same(await inBucket(s3), [large])
  },
)

t.test('a body that does not hash to its digest never reaches the bucket', async (t) => {
  const s3 = await startS3rver(t)
  const upstream = await fakeUpstream(t, serveBytes(Buffer.from('not the blob you asked for')))
  const app = await startApp(t, {
    yaml: `${storageYaml(s3)}${dockerYaml(upstream.url)}`,
  })
  const digest = digestOf('the blob you asked for')
  const res = await request(`${app.url}/v2/library/app/blobs/${digest}`)
  const body = await drain(res.body)
  t.not(body.digest, digest, 'the client never gets a complete wrong body')
  await app.app.services.cache.settled()
  t.ok((await metricSum(app.url, 'pullthrough_digest_mismatch_total')) >= 1)
  t.same(await inBucket(s3), [], 'nothing in the bucket')
  t.same(await filesUnder(join(app.storagePath, 'tmp')), [], 'nothing left in the spool')
})

t.test(
  'with storage.s3.redirect a warm blob GET answers 307 to a presigned URL of the bucket',
  async (t) => {
    const s3 = await startS3rver(t)
    const blob = randomBlob(100_000)
    const upstream = await fakeUpstream(t, serveBytes(blob.data))
    const app = await startApp(t, {
      yaml: `${storageYaml(s3)}    redirect: { expires: 1m }
${dockerYaml(upstream.url)}`,
    })
    const url = `${app.url}/v2/library/app/blobs/${blob.digest}`
    const cold = await request(url)
    t.equal(cold.statusCode, 200, 'a cold GET streams the fill as usual')
    t.same(await drain(cold.body), {
      bytes: blob.data.length,
      digest: blob.digest,
      error: undefined,
    })
    await app.app.services.cache.settled()

    const head = await request(url, { method: 'HEAD' })
    t.equal(head.statusCode, 200, 'HEAD is answered here')
    t.equal(head.headers['content-length'], String(blob.data.length))
    await head.body.dump()

    const warm = await request(url)
    t.equal(warm.statusCode, 307)
    const location = String(warm.headers.location)
    t.ok(location.startsWith(`${s3.endpoint}/${s3.bucket}/${PREFIX}blobs/sha256/`), 'to the bucket')
    t.match(location, /X-Amz-Expires=60&/, 'valid for storage.s3.redirect.expires')
    await warm.body.dump()

    const following = new Agent().compose(interceptors.redirect({ maxRedirections: 1 }))
    t.teardown(() => following.close())
    const followed = await request(url, { dispatcher: following })
    t.equal(followed.statusCode, 200)
    t.same(await drain(followed.body), {
      bytes: blob.data.length,
      digest: blob.digest,
      error: undefined,
    })
    const ranged = await request(url, { dispatcher: following, headers: { range: 'bytes=10-19' } })
    t.equal(ranged.statusCode, 206)
    t.ok(Buffer.from(await ranged.body.arrayBuffer()).equals(blob.data.subarray(10, 20)))
    t.equal(upstream.count('/v2/library/app/blobs/'), 1, 'the upstream was asked once')
  },
)

t.test('skopeo pulls an image twice through storage.s3.redirect', async (t) => {
  const s3 = await startS3rver(t)
  const registry = await startRegistry(t)
  const image = await buildImage(await tempDir(t, 'pt-img-'), { layers: [4096, 300_000] })
  await registry.pushImage(image, 'library/app:1.0')
  const app = await startApp(t, {
    yaml: `${storageYaml(s3)}    redirect: { expires: 1m }
${dockerYaml(registry.url)}`,
  })
  const host = new URL(app.url).host
  const out = await tempDir(t, 'pt-out-')
  const first = await pullImage(t, `${host}/app:1.0`, join(out, 'cold'))
  await app.app.services.cache.settled()
  const second = await pullImage(t, `${host}/app:1.0`, join(out, 'warm'))
  t.equal(second.digest, first.digest, 'the same image both times')
  const text = await (await request(`${app.url}/metrics`)).body.text()
  const redirected = text
    .split('\n')
    .filter((l) => l.startsWith('pullthrough_http_requests_total{') && l.includes('status="307"'))
    .reduce((sum, l) => sum + Number(l.slice(l.lastIndexOf(' ') + 1)), 0)
  t.ok(redirected >= 3, `the warm config and layers were redirected (${redirected})`)
})

t.test('eviction deletes the least recently used objects from the bucket', async (t) => {
  const s3 = await startS3rver(t)
  const blobs = [randomBlob(200_000), randomBlob(200_000), randomBlob(200_000)]
  const upstream = await fakeUpstream(t, (req) => {
    const blob = blobs.find((b) => req.url?.endsWith(b.digest))
    return blob
      ? { status: 200, headers: {}, body: blob.data, ranges: true }
      : { status: 404, headers: {}, body: Buffer.from('not found') }
  })
  const app = await startApp(t, {
    yaml: `${storageYaml(s3).replace('storage:\n', 'storage:\n  maxSize: 500000\n  lowWatermark: 0.9\n')}${dockerYaml(upstream.url)}`,
  })
  for (const blob of blobs) {
    const res = await request(`${app.url}/v2/library/app/blobs/${blob.digest}`)
    t.same(await drain(res.body), { bytes: 200_000, digest: blob.digest, error: undefined })
    await app.app.services.cache.settled()
    await app.app.services.accesses.flush()
  }
  // Joins the pass the last fill started.
  await app.app.services.evictor.run()
  const [oldest, ...rest] = blobs.map((b) => b.digest)
  t.same(await inBucket(s3), rest.sort(), 'the oldest is gone, the others stay')
  t.equal(await app.app.deps.metadata.getBlob(oldest ?? ''), undefined)
})

t.test(
  'verify finds a rotten object, quarantines it, and the next pull stores it again',
  async (t) => {
    const s3 = await startS3rver(t)
    const blob = randomBlob(300_000)
    const upstream = await fakeUpstream(t, serveBytes(blob.data))
    const token = 's3-verify-admin-token-0123456'
    const app = await startApp(t, {
      yaml: `${storageYaml(s3)}${dockerYaml(upstream.url)}scrub: { interval: 0 }
admin: { token: "${token}" }
`,
    })
    const url = `${app.url}/v2/library/app/blobs/${blob.digest}`
    await (await request(url)).body.dump()
    await app.app.services.cache.settled()
    const rotten = Buffer.from(blob.data)
    rotten[1000] = (rotten[1000] ?? 0) ^ 0xff
    await s3.putRaw(
      `${PREFIX}blobs/sha256/${blob.digest.slice(7, 9)}/${blob.digest.slice(7)}`,
      rotten,
    )

    const run = await runCli(t, ['verify', '--url', app.url, '--token', token, '--json'], {
      env: cleanEnv(),
    })
    t.equal(run.code, 1, run.stderr)
    t.match(JSON.parse(run.stdout), { blobs: 1, corrupt: 1, corruptDigests: [blob.digest] })
    t.same(await inBucket(s3), [], 'the rotten object is deleted')
    const again = await request(url)
    t.same(await drain(again.body), {
      bytes: blob.data.length,
      digest: blob.digest,
      error: undefined,
    })
    await app.app.services.cache.settled()
    t.same(await inBucket(s3), [blob.digest], 'and stored whole again')
    t.equal(upstream.count('/v2/library/app/blobs/'), 2)
  },
)

t.test('a bucket that does not answer stops the start with a clear error', async (t) => {
  const s3 = await startS3rver(t)
  const { config } = await testConfig(
    t,
    storageYaml(s3).replace(`bucket: ${s3.bucket}`, 'bucket: no-such-bucket'),
  )
  await t.rejects(buildApp(config), {
    code: 'PT_STORAGE_WRITE',
    message: /the bucket does not answer \(NotFound, HTTP 404\)/,
  })
  const s3Config = config.storage.s3
  if (!s3Config) throw new Error('storage.s3 expected')
  // The failed start let go of the embedded metadata store: a good one opens it.
  const app = await buildApp({
    ...config,
    storage: { ...config.storage, s3: { ...s3Config, bucket: s3.bucket } },
  })
  await app.close()
})

t.test(
  'export reads from the bucket; import into another prefix serves skopeo offline',
  async (t) => {
    const s3 = await startS3rver(t)
    const registry = await startRegistry(t)
    const image = await buildImage(await tempDir(t, 'pt-img-'), { layers: [3000, 6 * MiB] })
    const pushed = await registry.pushImage(image, 'library/app:1.0')
    const source = await startApp(t, {
      yaml: `${storageYaml(s3, 'source/')}${dockerYaml(registry.url)}admin: { token: "${TOKEN}" }
`,
    })
    const out = await tempDir(t, 'pt-out-')
    await pullImage(t, `${new URL(source.url).host}/app:1.0`, join(out, 'first'))
    await source.app.services.cache.settled()
    const cached = await inBucket(s3, 'source/')
    await registry.stop()

    const bundle = join(out, 'bundle.tar')
    const exported = await cliAgainst(t, source, TOKEN, [
      'export',
      '--images',
      'library/app:1.0',
      '--out',
      bundle,
    ])
    t.equal(exported.code, 0, exported.stderr)

    const airgap = await startApp(t, {
      yaml: `${storageYaml(s3, 'airgap/')}offline: true
${dockerYaml(`http://127.0.0.1:${await freePort()}`)}admin: { token: "${TOKEN}" }
`,
    })
    const imported = await cliAgainst(t, airgap, TOKEN, ['import', bundle])
    t.equal(imported.code, 0, imported.stderr)
    t.same(await inBucket(s3, 'airgap/'), cached, 'the same blobs, under the other prefix')
    t.same(await filesUnder(join(airgap.storagePath, 'tmp')), [], 'the staging is gone')
    const pulled = await pullImage(t, `${new URL(airgap.url).host}/app:1.0`, join(out, 'airgap'))
    t.equal(pulled.digest, pushed.digest, 'skopeo pulls the image from the imported objects')
  },
)
