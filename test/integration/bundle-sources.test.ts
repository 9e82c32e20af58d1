/**
 * What goes into a bundle besides named images and packages, and what is
 * refused: everything the cache holds (`--all`, with every upstream down), a
 * sync list's selection, pins on import; a corrupt upstream file cuts the
 * export and leaves no file; a bundle naming a registry the importer does not
 * configure changes nothing.
 */
import { readdir } from 'node:fs/promises'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { request } from 'undici'
import { startApp, type TestApp } from '../helpers/app.ts'
import { cliAgainst, pipDownload, startAirgap, startSource } from '../helpers/bundle.ts'
import { tempDir } from '../helpers/config.ts'
import { get } from '../helpers/http.ts'
import { buildImage } from '../helpers/images.ts'
import { indexYaml, startPypiUpstream } from '../helpers/pypi-upstream.ts'
import { startRegistry } from '../helpers/registry.ts'

const TOKEN = 'bundle-sources-admin-token-01'

const cli = (t: Test, app: TestApp, args: string[]) => cliAgainst(t, app, TOKEN, args)

async function pins(app: TestApp): Promise<string[]> {
  const res = await request(`${app.url}/-/api/v1/pins`, {
    headers: { authorization: `Bearer ${TOKEN}` },
  })
  return ((await res.body.json()) as { items: string[] }).items
}

t.test(
  '--all exports what is cached with every upstream down; --sync-list what a list selects',
  async (t) => {
    const registry = await startRegistry(t)
    const upstream = await startPypiUpstream(t)
    const dir = await tempDir(t, 'pt-bundle-src-')
    const pulled = await buildImage(join(dir, 'pulled'), { layers: [2000] })
    const listed = await buildImage(join(dir, 'listed'), { layers: [1500] })
    await registry.pushImage(pulled, 'library/pulled:1')
    await registry.pushImage(listed, 'library/listed:2.0')
    const source = await startSource(
      t,
      TOKEN,
      registry,
      upstream,
      `sync:
  - name: base
    images: [{ repository: listed, semver: ">=2" }]
    packages: [{ project: lib, versions: "==1.1" }]
`,
    )
    // A client pulls one image and one package through the cache.
    t.equal(
      (
        await get(`${source.url}/v2/library/pulled/manifests/1`, {
          headers: { accept: pulled.mediaType },
        })
      ).status,
      200,
    )
    for (const layer of pulled.manifests[0]!.layers)
      t.equal((await get(`${source.url}/v2/library/pulled/blobs/${layer.digest}`)).status, 200)
    t.equal(
      (await get(`${source.url}/v2/library/pulled/blobs/${pulled.manifests[0]!.config}`)).status,
      200,
    )
    const pulledApp = await pipDownload(t, `${source.url}/pypi/pypi/simple/`, 'app')
    t.equal(pulledApp.run.code, 0, pulledApp.run.stderr)
    await source.app.services.pulls?.flush()

    await registry.stop()
    await upstream.stop()
    await upstream.files.stop()
    const all = join(dir, 'all.tar')
    const everything = await cli(t, source, ['export', '--all', '--json', '--out', all])
    t.equal(everything.code, 0, everything.stderr)
    const manifest = JSON.parse(everything.stdout) as {
      images: { repository: string; tag: string; digest: string }[]
      packages: { project: string; files: { filename: string }[] }[]
    }
    t.same(
      manifest.images.map((i) => `${i.repository}:${i.tag}`),
      ['library/pulled:1'],
      'the cached tag, no upstream asked',
    )
    t.equal(manifest.images[0]?.digest, pulled.digest)
    t.same(
      manifest.packages.map((p) => p.project),
      ['app'],
      'the project pulls went through',
    )
    t.same(
      manifest.packages[0]?.files.map((f) => f.filename),
      pulledApp.files.map((f) => f.name).sort(),
      'with the files that are stored',
    )

    // A sync list's selection needs its upstreams.
    await registry.start()
    await upstream.start()
    await upstream.files.start()
    const base = join(dir, 'base.tar')
    const listExport = await cli(t, source, [
      'export',
      '--sync-list',
      'base',
      '--json',
      '--out',
      base,
    ])
    t.equal(listExport.code, 0, listExport.stderr)
    const fromList = JSON.parse(listExport.stdout) as typeof manifest
    t.same(
      fromList.images.map((i) => `${i.repository}:${i.tag}`),
      ['library/listed:2.0'],
    )
    t.same(
      fromList.packages.map((p) => p.project),
      ['lib'],
    )
    t.ok(
      fromList.packages[0]?.files.every((f) => f.filename.includes('1.1')),
      'only lib 1.1',
    )
    const unknown = await cli(t, source, [
      'export',
      '--sync-list',
      'nope',
      '--out',
      join(dir, 'x.tar'),
    ])
    t.equal(unknown.code, 1)
    t.match(unknown.stderr, /no sync list is named "nope"/)

    // Pinned on import.
    const airgap = await startAirgap(t, TOKEN, 'internal')
    const refused = await cli(t, airgap, ['import', base])
    t.equal(refused.code, 1)
    t.match(refused.stderr, /packages of index "pypi", which this pullthrough does not configure/)
    t.same(await pins(airgap), [])
    t.equal((await airgap.app.deps.metadata.blobTotals()).count, 0, 'nothing stored')
    const only = join(dir, 'images.tar')
    t.equal((await cli(t, source, ['export', '--images', 'listed:2.0', '--out', only])).code, 0)
    const pinned = await cli(t, airgap, ['import', '--pin', only])
    t.equal(pinned.code, 0, pinned.stderr)
    const held = await pins(airgap)
    t.ok(held.includes(listed.digest), 'the manifest is pinned')
    t.ok(held.includes(listed.manifests[0]!.layers[0]!.digest), 'and its layer')
  },
)

t.test(
  'a corrupt upstream file cuts the export: the command fails and writes nothing',
  async (t) => {
    const upstream = await startPypiUpstream(t)
    const source = await startApp(t, {
      yaml: `${indexYaml([upstream])}admin: { token: "${TOKEN}" }\n`,
    })
    const wheel = upstream.packages
      .project('lib')
      .files.find((f) => f.version === '1.1' && f.kind === 'wheel')!
    upstream.files.corrupt(upstream.fileUrl(wheel))
    const dir = await tempDir(t, 'pt-bundle-cut-')
    const out = join(dir, 'lib.tar')
    const run = await cli(t, source, [
      'export',
      '--package',
      'lib==1.1',
      '--files',
      '*.whl',
      '--out',
      out,
    ])
    t.equal(run.code, 1)
    t.match(run.stderr, /the export failed, nothing was written/)
    t.same(await readdir(dir), [], 'no bundle, no temp file')
    t.notOk(
      await source.app.deps.blobs.has(`sha256:${wheel.sha256}`),
      'the corrupt file was not cached',
    )

    // Without the admin token the API refuses, before any work.
    const anonymous = await request(`${source.url}/-/api/v1/export`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ all: true }),
    })
    t.equal(anonymous.statusCode, 401)
    await anonymous.body.dump()
    const noBody = await cli(t, source, ['export', '--out', out])
    t.equal(noBody.code, 2, 'nothing named is a usage error')
    t.match(noBody.stderr, /export needs --images, --package, --requirements, --sync-list or --all/)
  },
)
