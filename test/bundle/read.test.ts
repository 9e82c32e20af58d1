/**
 * The bundle reader against bundles the writer made and then damaged: every
 * departure from the manifest is refused naming the entry, and a whole
 * bundle reads back with every entry checked.
 */
import { Readable } from 'node:stream'
import fc from 'fast-check'
import t from 'tap'
import tar from 'tar-stream'
import { BundleInvalidError } from '../../src/bundle/errors.ts'
import { blobPath, filePath } from '../../src/bundle/format.ts'
import { checkContent, readBundle } from '../../src/bundle/read.ts'
import { writeBundle, type BundlePlan } from '../../src/bundle/write.ts'
import { digestOf } from '../../src/storage/digest.ts'

const layer = Buffer.alloc(3000, 7)
const wheel = Buffer.from('not really a wheel')
const manifest = Buffer.from(
  JSON.stringify({ schemaVersion: 2, layers: [{ digest: digestOf(layer), size: layer.length }] }),
)

function plan(): BundlePlan {
  const entry = (path: string, body: Buffer) => ({
    path,
    digest: digestOf(body),
    size: body.length,
    open: () => Promise.resolve(Readable.from([body])),
  })
  return {
    images: [
      {
        registry: 'docker.io',
        repository: 'library/app',
        tag: '1.0',
        digest: digestOf(manifest),
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        size: manifest.length,
        fetchedAt: 1,
      },
    ],
    packages: [
      {
        index: 'pypi',
        project: 'app',
        fetchedAt: 1,
        files: [
          {
            filename: 'app-1.0-py3-none-any.whl',
            sha256: digestOf(wheel).slice(7),
            size: wheel.length,
            url: 'https://files.example/app-1.0-py3-none-any.whl',
          },
        ],
      },
    ],
    content: [
      entry(blobPath(digestOf(manifest)), manifest),
      entry(blobPath(digestOf(layer)), layer),
      entry(filePath('pypi', 'app', 'app-1.0-py3-none-any.whl'), wheel),
    ],
  }
}

async function bytes(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const chunk of stream) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks)
}

/** The tar's entries, to rebuild it changed. */
async function entries(bundle: Buffer): Promise<{ name: string; body: Buffer }[]> {
  const extract = tar.extract()
  Readable.from([bundle]).pipe(extract)
  const out: { name: string; body: Buffer }[] = []
  for await (const entry of extract)
    out.push({ name: entry.header.name, body: await bytes(entry as unknown as Readable) })
  return out
}

async function repack(list: readonly { name: string; body: Buffer }[]): Promise<Buffer> {
  const pack = tar.pack()
  for (const e of list) pack.entry({ name: e.name, size: e.body.length }, e.body)
  pack.finalize()
  return bytes(Readable.from(pack as AsyncIterable<Buffer>))
}

const read = (bundle: Buffer) =>
  readBundle(Readable.from([bundle]), {
    manifest: () => Promise.resolve(),
    content: checkContent,
  })

t.test('a whole bundle reads back, every entry checked', async (t) => {
  const bundle = await bytes(writeBundle(plan(), new Date(0)))
  const seen: string[] = []
  const m = await readBundle(
    Readable.from([bundle]),
    { manifest: () => Promise.resolve(), content: checkContent },
    (e) => seen.push(e.path),
  )
  t.equal(m.images[0]?.tag, '1.0')
  t.same(
    seen,
    m.entries.map((e) => e.path),
    'each entry of the manifest, in order',
  )
  t.ok(seen.includes('index.json') && seen.includes('pypi/pypi/simple/app/index.html'))
  const names = (await entries(bundle)).map((e) => e.name)
  t.equal(names[0], 'pullthrough-bundle.json', 'the manifest first')
  t.equal(names.at(-1), 'SHA256SUMS', 'the sums last')
})

t.test('damaged bundles are refused, naming what is wrong', async (t) => {
  const good = await entries(await bytes(writeBundle(plan(), new Date(0))))
  const layerPath = blobPath(digestOf(layer))
  const cases: [string, { name: string; body: Buffer }[], RegExp][] = [
    ['not a bundle', good.slice(1), /not a pullthrough bundle: it starts with oci-layout/],
    ['an entry left out', good.filter((e) => e.name !== layerPath), /entries are missing/],
    ['no SHA256SUMS', good.slice(0, -1), /ends before SHA256SUMS/],
    [
      'an entry it does not list',
      [...good.slice(0, 2), { name: 'extra', body: Buffer.from('x') }, ...good.slice(2)],
      /extra: not in the bundle's manifest/,
    ],
    [
      'an entry twice',
      [...good.slice(0, 3), good[2]!, ...good.slice(3)],
      /not in the bundle's manifest \(or twice\)/,
    ],
    [
      'a generated entry changed',
      good.map((e) =>
        e.name === 'index.json'
          ? { ...e, body: Buffer.from(e.body.toString().replace('1.0', '9.9')) }
          : e,
      ),
      /index\.json: its bytes do not match its digest/,
    ],
    [
      'a blob of the right size, other bytes',
      good.map((e) => (e.name === layerPath ? { ...e, body: Buffer.alloc(layer.length, 8) } : e)),
      new RegExp(`${layerPath}: its bytes do not match its digest`),
    ],
    [
      'a blob of another size',
      good.map((e) => (e.name === layerPath ? { ...e, body: Buffer.alloc(10, 7) } : e)),
      /10 bytes, the manifest says 3000/,
    ],
    [
      'the manifest not JSON',
      [{ name: 'pullthrough-bundle.json', body: Buffer.from('{') }, ...good.slice(1)],
      /pullthrough-bundle\.json is not JSON/,
    ],
  ]
  for (const [what, list, message] of cases)
    await t.rejects(read(await repack(list)), { constructor: BundleInvalidError, message }, what)
  const whole = await repack(good)
  await t.rejects(
    read(whole.subarray(0, whole.length - 2048)),
    BundleInvalidError,
    'cut inside the last entry',
  )
  await t.rejects(read(Buffer.from('hello, not a tar at all')), BundleInvalidError, 'not a tar')
})

t.test('any damage to a bundle is refused as invalid, or leaves every entry intact', async (t) => {
  const bundle = await bytes(writeBundle(plan(), new Date(0)))
  const whole = (await read(bundle)).entries.length
  await fc.assert(
    fc.asyncProperty(
      fc.oneof(
        fc.record({ cut: fc.nat({ max: bundle.length - 1 }) }),
        fc.record({
          flip: fc.nat({ max: bundle.length - 1 }),
          mask: fc.integer({ min: 1, max: 255 }),
        }),
      ),
      async (damage) => {
        const damaged = Buffer.from(bundle)
        const input =
          'cut' in damage
            ? damaged.subarray(0, damage.cut)
            : (damaged.writeUInt8((damaged[damage.flip] ?? 0) ^ damage.mask, damage.flip), damaged)
        try {
          const m = await read(input)
          // Accepted: the flip hit bytes nothing reads (tar padding, mtime); the content checked out.
          return m.entries.length === whole
        } catch (error) {
          return error instanceof BundleInvalidError
        }
      },
    ),
    { numRuns: 300 },
  )
  t.pass('every damaged bundle was refused as invalid or read whole')
})
