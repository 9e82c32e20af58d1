/**
 * The layering of docs/architecture.md, as `npm run lint` enforces it: a
 * protocol reaches upstream/ only through its remote.ts, never storage/ or
 * the other protocol; the lower layers never know Fastify.
 */
import { ESLint } from 'eslint'
import t from 'tap'
import { ROOT } from './files.ts'

const eslint = new ESLint({ cwd: ROOT })

/** The layer rule's findings for `code` placed at `filePath`. */
async function layerErrors(filePath: string, code: string): Promise<string[]> {
  const [result] = await eslint.lintText(code, { filePath })
  return (result?.messages ?? [])
    .filter((m) => m.ruleId === 'no-restricted-imports' || m.fatal === true)
    .map((m) => m.message)
}

const importPool =
  "import type { UpstreamPool } from '../upstream/pool.ts'\nexport type P = UpstreamPool\n"

t.test('a protocol file that imports upstream/ fails lint; its remote.ts may', async (t) => {
  for (const file of ['src/docker/tags.ts', 'src/pypi/pages.ts']) {
    const errors = await layerErrors(file, importPool)
    t.match(errors, [/only door to upstream\/ is its remote\.ts/], file)
  }
  for (const file of ['src/docker/remote.ts', 'src/pypi/remote.ts'])
    t.same(await layerErrors(file, importPool), [], file)
})

t.test('protocols import neither storage/ nor each other', async (t) => {
  const storage =
    "import type { BlobStore } from '../storage/blob-store.ts'\nexport type B = BlobStore\n"
  t.match(await layerErrors('src/docker/remote.ts', storage), [/never storage/])
  t.match(await layerErrors('src/pypi/files.ts', storage), [/never storage/])
  const docker =
    "import type { DockerTarget } from '../docker/target.ts'\nexport type D = DockerTarget\n"
  t.match(await layerErrors('src/pypi/remote.ts', docker), [/never import each other/])
})

t.test('storage, metadata, upstream and cache never import fastify', async (t) => {
  const fastify = "import type { FastifyReply } from 'fastify'\nexport type R = FastifyReply\n"
  for (const file of ['src/cache/fill.ts', 'src/upstream/pool.ts', 'src/storage/blob-store.ts'])
    t.match(await layerErrors(file, fastify), [/only http\/ and the protocols know Fastify/], file)
  t.same(await layerErrors('src/docker/tags.ts', fastify), [], 'a protocol may')
})

t.test('sync/ knows the protocols only through its ports', async (t) => {
  const docker =
    "import type { DockerTarget } from '../docker/target.ts'\nexport type D = DockerTarget\n"
  t.match(await layerErrors('src/sync/list-run.ts', docker), [/through its ports/])
  const cache =
    "import type { ManifestCache } from '../cache/manifests.ts'\nexport type M = ManifestCache\n"
  t.match(await layerErrors('src/sync/jobs.ts', cache), [/through its ports/])
  const fastify = "import type { FastifyReply } from 'fastify'\nexport type R = FastifyReply\n"
  t.match(await layerErrors('src/sync/jobs.ts', fastify), [/only http\/ and the protocols/])
})

t.test('bundle/ knows the protocols only through its ports', async (t) => {
  const pypi = "import type { ProjectPage } from '../pypi/model.ts'\nexport type P = ProjectPage\n"
  t.match(await layerErrors('src/bundle/import.ts', pypi), [/through its ports/])
  const http = "import { API_PREFIX } from '../http/api/routes.ts'\nexport const P = API_PREFIX\n"
  t.match(await layerErrors('src/bundle/plan.ts', http), [/through its ports/])
})

t.test('auth/ decides from the config alone: no protocol, cache, http or Fastify', async (t) => {
  const docker =
    "import type { DockerTarget } from '../docker/target.ts'\nexport type D = DockerTarget\n"
  t.match(await layerErrors('src/auth/policy.ts', docker), [/decides who may pull what/])
  const fastify = "import type { FastifyReply } from 'fastify'\nexport type R = FastifyReply\n"
  t.match(await layerErrors('src/auth/identity.ts', fastify), [/only http\/ and the protocols/])
})

// Type-aware lint of every file takes a while on a shared machine.
t.test('src/ keeps the layering today', { timeout: 300_000 }, async (t) => {
  const results = await eslint.lintFiles(['src/'])
  const broken = results.flatMap((r) =>
    r.messages
      .filter((m) => m.ruleId === 'no-restricted-imports')
      .map((m) => `${r.filePath}:${m.line} ${m.message}`),
  )
  t.same(broken, [])
})
