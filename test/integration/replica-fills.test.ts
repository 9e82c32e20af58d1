/**
 * Three real `pullthrough serve` processes sharing Redis and their blobs (one
 * storage directory, or one S3 bucket on s3rver) act as one cache: a cold blob is fetched from upstream once,
 * whichever replicas its clients reach; the others stream it from the replica
 * fetching it. When that replica is SIGKILLed mid-fill, another takes the
 * fill over from the byte it reached (one ranged upstream request) and every
 * client still gets verified bytes.
 */
import { createHash } from 'node:crypto'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import t, { type Test } from 'tap'
import { request } from 'undici'
import { CLI, cleanEnv, spawnNode, waitListening } from '../helpers/cli.ts'
import { tempDir } from '../helpers/config.ts'
import { fakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.ts'
import { freePort } from '../helpers/free-port.ts'
import { metricSum } from '../helpers/http.ts'
import { startRedis } from '../helpers/redis-server.ts'
import { S3RVER_KEY, startS3rver, type S3rver } from '../helpers/s3rver.ts'
import { randomBlob } from '../helpers/streams.ts'

const SECRET = 'replica-fills-test-secret-0123456789abcdef'
/** The upstream's pace: slow enough that a fill is still running when the owner is killed. */
const CHUNK_BYTES = 256 * 1024
const CHUNK_EVERY_MS = 25
const BLOB_BYTES = 24 * 1024 * 1024
/** Each client's download must end within this (the fill takes about 2.5 s, a takeover 5-10 s more). */
const CLIENT_TIMEOUT_MS = 60_000

interface Replica {
  readonly url: string
  readonly child: ReturnType<typeof spawnNode>
}

/** An upstream registry that sends blobs at a fixed pace and honours `Range: bytes=N-`. */
function pacedBlob(data: Buffer) {
  return async (req: IncomingMessage, res: ServerResponse) => {
    const start = Number(/^bytes=(\d+)-$/.exec(req.headers.range ?? '')?.[1] ?? 0)
    res.writeHead(start > 0 ? 206 : 200, {
      'content-type': 'application/octet-stream',
      'content-length': String(data.length - start),
      ...(start > 0 ? { 'content-range': `bytes ${start}-${data.length - 1}/${data.length}` } : {}),
    })
    for (let at = start; at < data.length && !res.destroyed; at += CHUNK_BYTES) {
      res.write(data.subarray(at, Math.min(at + CHUNK_BYTES, data.length)))
      await sleep(CHUNK_EVERY_MS)
    }
    res.end()
  }
}

type Storage = 'volume' | 'bucket'

/** The storage section of replica `i`: one shared directory, or a bucket and a spool each. */
function storageYaml(dir: string, i: number, s3: S3rver | undefined): string {
  if (!s3) return `storage: { path: "${join(dir, 'data')}" }\n`
  return `storage:
  path: "${join(dir, `spool-${i}`)}"
  s3:
    bucket: ${s3.bucket}
    endpoint: "${s3.endpoint}"
    pathStyle: true
    partSize: 5MiB
    credentials: { accessKeyId: ${S3RVER_KEY.accessKeyId}, secretAccessKey: ${S3RVER_KEY.secretAccessKey} }
`
}

async function replicas(
  t: Test,
  upstream: FakeUpstream,
  count: number,
  s3: S3rver | undefined,
): Promise<Replica[]> {
  const redis = await startRedis(t)
  const dir = await tempDir(t, 'pt-replicas-')
  return Promise.all(
    Array.from({ length: count }, async (_, i) => {
      const config = join(dir, `replica-${i}.yaml`)
      const internal = await freePort()
      await writeFile(
        config,
        `server: { host: 127.0.0.1, port: ${await freePort()} }
${storageYaml(dir, i, s3)}metadata: { redis: { url: "${redis.url}" } }
cluster: { port: ${internal}, advertise: "http://127.0.0.1:${internal}", secret: "${SECRET}" }
log: { format: json, level: info }
docker:
  registries:
    - { name: docker.io, default: true, upstreams: [{ url: "${upstream.url}" }] }
`,
      )
      const child = spawnNode(t, CLI, ['serve', '--config', config], { env: cleanEnv() })
      return { url: await waitListening(child), child }
    }),
  )
}

/** Downloads a blob; resolves with its status and the digest of what arrived. */
async function pull(base: string, digest: string) {
  const res = await request(`${base}/v2/library/app/blobs/${digest}`, {
    signal: AbortSignal.timeout(CLIENT_TIMEOUT_MS),
  })
  const hash = createHash('sha256')
  let bytes = 0
  try {
    for await (const chunk of res.body) {
      hash.update(chunk as Buffer)
      bytes += (chunk as Buffer).length
    }
  } catch {
    // A cut body: the digest below will not match.
  }
  return { status: res.statusCode, digest: `sha256:${hash.digest('hex')}`, bytes }
}

/** Asserts the bucket ends up holding the blob as one object, and nothing else (bounded wait). */
async function holdsOnce(t: Test, s3: S3rver, digest: string): Promise<void> {
  const key = `blobs/sha256/${digest.slice(7, 9)}/${digest.slice(7)}`
  const deadline = Date.now() + 10_000
  let keys = await s3.keys('blobs/')
  while (!keys.includes(key) && Date.now() < deadline) {
    await sleep(100)
    keys = await s3.keys('blobs/')
  }
  t.same(keys, [key], 'the bucket holds the blob, once')
}

async function roles(replica: Replica) {
  const role = (name: string) =>
    metricSum(replica.url, `pullthrough_replica_fills_total{role="${name}"}`)
  return {
    owner: await role('owner'),
    joiner: await role('joiner'),
    takeover: await role('takeover'),
  }
}

for (const storage of ['volume', 'bucket'] as Storage[]) {
  t.test(
    `${storage}: 30 cold clients spread over 3 replicas, one upstream GET, verified bytes`,
    async (t) => {
      const blob = randomBlob(BLOB_BYTES)
      const upstream = await fakeUpstream(t, pacedBlob(blob.data))
      const s3 = storage === 'bucket' ? await startS3rver(t) : undefined
      const group = await replicas(t, upstream, 3, s3)
      const results = await Promise.all(
        Array.from({ length: 30 }, (_, i) => pull(group[i % 3]!.url, blob.digest)),
      )
      t.ok(
        results.every((r) => r.status === 200 && r.digest === blob.digest),
        'every client got the whole blob, verified',
      )
      t.equal(upstream.count(`/v2/library/app/blobs/${blob.digest}`), 1, 'one upstream GET for all')
      if (s3) await holdsOnce(t, s3, blob.digest)
      const counts = await Promise.all(group.map(roles))
      t.equal(
        counts.reduce((sum, c) => sum + c.owner, 0),
        1,
        'one replica fetched it for the others',
      )
      t.equal(
        counts.reduce((sum, c) => sum + c.joiner, 0),
        2,
        'the two others streamed it from that one',
      )
    },
  )

  t.test(
    `${storage}: the replica fetching a blob is killed mid-fill, another takes over`,
    async (t) => {
      const blob = randomBlob(BLOB_BYTES)
      const upstream = await fakeUpstream(t, pacedBlob(blob.data))
      const s3 = storage === 'bucket' ? await startS3rver(t) : undefined
      const [owner, ...others] = await replicas(t, upstream, 3, s3)
      const path = `/v2/library/app/blobs/${blob.digest}`
      // The owner starts the fill; its client is killed with it.
      const doomed = pull(owner!.url, blob.digest).catch(() => undefined)
      const deadline = Date.now() + 10_000
      while (upstream.count(path) === 0 && Date.now() < deadline) await sleep(10)
      const clients = others.flatMap((replica) => [
        pull(replica.url, blob.digest),
        pull(replica.url, blob.digest),
      ])
      // A third of the blob through, the owner dies without a word.
      await sleep((BLOB_BYTES / CHUNK_BYTES / 3) * CHUNK_EVERY_MS)
      owner!.child.kill('SIGKILL')
      const killedAt = Date.now()
      const results = await Promise.all(clients)
      await doomed
      t.ok(
        results.every((r) => r.status === 200 && r.digest === blob.digest),
        `the clients of the other replicas got the whole blob, verified (${Date.now() - killedAt} ms after the kill)`,
      )
      const requests = upstream.requests.filter((r) => r.url === path)
      t.equal(requests.length, 2, 'the upstream saw one more request after the kill')
      t.match(
        requests[1]?.headers.range,
        /^bytes=[1-9]\d*-$/,
        'a ranged one, from the byte reached',
      )
      if (s3) await holdsOnce(t, s3, blob.digest)
      const counts = await Promise.all(others.map(roles))
      t.equal(
        counts.reduce((sum, c) => sum + c.takeover, 0),
        1,
        'one replica took the fill over',
      )
    },
  )
}
