/**
 * Warm GETs, and clients behind the head of a cold fill (cache/attempt.ts),
 * read into buffers that are used again once a response has
 * written them (storage/read-buffers.ts). Many concurrent GETs of different
 * blobs, one of them read slowly, must each get exactly their blob's bytes:
 * a buffer reused while a response still held it would mix blobs. With
 * verifyOnRead off nothing else would notice, so the test checks every byte.
 */
import { createHash, randomBytes } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { request } from 'undici'
import { startApp } from '../helpers/app.ts'
import { startRegistry } from '../helpers/registry.ts'

const MiB = 1024 * 1024
const sha256 = (data: Buffer) => `sha256:${createHash('sha256').update(data).digest('hex')}`

async function fetchBlob(url: string, slow = false): Promise<string> {
  const res = await request(url)
  if (res.statusCode !== 200) throw new Error(`GET ${url} answered ${res.statusCode}`)
  const hash = createHash('sha256')
  for await (const chunk of res.body) {
    hash.update(chunk as Buffer)
    // A slow client: its response holds each chunk while others come and go.
    if (slow) await sleep(2)
  }
  return `sha256:${hash.digest('hex')}`
}

for (const verifyOnRead of [false, true])
  t.test(
    `concurrent warm GETs each get their own bytes (verifyOnRead ${String(verifyOnRead)})`,
    async (t) => {
      const registry = await startRegistry(t)
      const blobs = Array.from({ length: 4 }, (_, i) => randomBytes(16 * MiB + i * 1000))
      for (const blob of blobs) await registry.pushBlob('library/warm', sha256(blob), blob)
      const app = await startApp(t, {
        yaml: `docker:
  registries:
    - { name: docker.io, default: true, upstreams: [{ url: "${registry.url}" }] }
storage: { verifyOnRead: ${String(verifyOnRead)} }
`,
      })
      const url = (blob: Buffer) => `${app.url}/v2/library/warm/blobs/${sha256(blob)}`
      for (const blob of blobs) t.equal(await fetchBlob(url(blob)), sha256(blob), 'cold fill')
      await registry.stop()

      // The slow client's socket fills up, so its response holds chunks in
      // pending writes while the other GETs take and give back buffers.
      const slow = fetchBlob(url(blobs[0]!), true)
      const gets: Promise<void>[] = []
      for (let round = 0; round < 4; round++)
        for (const [i, blob] of blobs.entries())
          gets.push(
            fetchBlob(url(blob)).then((digest) => {
              if (digest !== sha256(blob)) throw new Error(`blob ${i} came back with other bytes`)
            }),
          )
      await Promise.all(gets)
      t.equal(await slow, sha256(blobs[0]!), 'the slow client got its blob unmixed')
      t.pass('16 warm GETs beside a slow one, each got exactly its blob')
      t.ok(app.app.deps.blobs.readBuffers.free > 0, 'read buffers came back to be used again')
    },
  )

t.test('clients behind the head of concurrent cold fills each get their own bytes', async (t) => {
  const registry = await startRegistry(t)
  const blobs = Array.from({ length: 4 }, (_, i) => randomBytes(16 * MiB + i * 1000))
  for (const blob of blobs) await registry.pushBlob('library/cold', sha256(blob), blob)
  const app = await startApp(t, {
    yaml: `docker:
  registries:
    - { name: docker.io, default: true, upstreams: [{ url: "${registry.url}" }] }
`,
  })
  const url = (blob: Buffer) => `${app.url}/v2/library/cold/blobs/${sha256(blob)}`
  // Per blob one fill, three clients: a slow one falls behind the fill's head and
  // reads the temp file back into reused buffers while the others take and give
  // back theirs. Nothing in pullthrough would notice mixed bytes (the fill
  // verified what it wrote, not what each reader sent), so every client hashes.
  const gets: Promise<void>[] = []
  for (const [i, blob] of blobs.entries())
    for (const slow of [true, false, false])
      gets.push(
        fetchBlob(url(blob), slow).then((digest) => {
          if (digest !== sha256(blob)) throw new Error(`blob ${i} came back with other bytes`)
        }),
      )
  await Promise.all(gets)
  t.pass('12 cold GETs of 4 blobs, 4 of them slow, each got exactly its blob')
  t.ok(app.app.deps.blobs.readBuffers.free > 0, 'buffers came back to be used again')
})
