/**
 * Property-based requests against the real app (Fastify inject), its
 * upstreams scripted to answer 404: whatever the path and headers, the answer
 * is never a 500 (502-504 say an upstream failed), and a request naming an invalid repository or project
 * reaches no upstream.
 */
import fc from 'fast-check'
import t, { type Test } from 'tap'
import { isRepositoryName, parseV2Path } from '../../src/docker/names.ts'
import { isProjectName } from '../../src/pypi/names.ts'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { basic, htpasswdLine, PASSWORDS } from '../helpers/access.ts'
import { startApp } from '../helpers/app.ts'
import { tempDir } from '../helpers/config.ts'
import { fakeUpstream } from '../helpers/fake-upstream.ts'

const RUNS = { numRuns: 300 }

/** Path segments: plausible names, route words, tricks, and percent-encoded anything. */
const segment = fc.oneof(
  fc.constantFrom('library', 'app', 'manifests', 'blobs', 'tags', 'list', 'referrers', 'latest'),
  fc.constantFrom('..', '.', '%2e%2e', '%2F', '%00', 'sha256:' + 'a'.repeat(64), 'A', '-x', 'x-'),
  fc.stringMatching(/^[a-z0-9._-]{1,20}$/),
  fc.string({ maxLength: 30 }).map((s) => encodeURIComponent(s)),
)
const headerText = fc.string({ maxLength: 80 }).map((s) => s.replace(/[^\x20-\x7e]/g, ''))

/** The app with a registry and an index whose upstreams answer 404, and `extra` config. */
async function fuzzedApp(t: Test, extra = '') {
  const registry = await fakeUpstream(t)
  const index = await fakeUpstream(t)
  const app = await startApp(t, {
    logLevel: 'silent',
    yaml: `docker:
  registries:
    - { name: docker.io, default: true, upstreams: [{ url: "${registry.url}" }], retry: { attempts: 1 } }
pypi:
  indexes:
    - { name: pypi, default: true, upstreams: [{ url: "${index.url}/simple/" }], retry: { attempts: 1 } }
${extra}`,
  })
  return { registry, index, app }
}

t.test('registry and index routes: no 500, no upstream request for an invalid name', async (t) => {
  const { registry, index, app } = await fuzzedApp(t)
  await fc.assert(
    fc.asyncProperty(
      fc.constantFrom('/v2/', '/pypi/pypi/simple/', '/pypi/pypi/files/', '/simple/'),
      fc.array(segment, { minLength: 1, maxLength: 6 }),
      fc.record({ accept: headerText, range: headerText }, { requiredKeys: [] }),
      async (prefix, segments, headers) => {
        const path = segments.join('/')
        const before = registry.count() + index.count()
        const res = await app.app.inject({ method: 'GET', url: `${prefix}${path}`, headers })
        if (res.statusCode >= 500 && ![502, 503, 504].includes(res.statusCode))
          throw new Error(`${prefix}${path} answered ${res.statusCode}: ${res.body}`)
        const asked = registry.count() + index.count() - before
        if (asked === 0) return
        // The path as the server sees it: `.` and `..` segments resolved.
        const seen = new URL(`${prefix}${path}`, 'http://pullthrough').pathname
        if (prefix === '/v2/') {
          const parsed = parseV2Path(decodeSafely(seen.slice('/v2/'.length)))
          if (!parsed || !isRepositoryName(parsed.name))
            throw new Error(`${seen}: an invalid name reached the upstream`)
        } else if (prefix !== '/pypi/pypi/files/' && seen.startsWith(prefix)) {
          const project = decodeSafely(seen.slice(prefix.length).split('/')[0] ?? '')
          // The root is the project list, which is asked of the upstream.
          if (project !== '' && !isProjectName(project))
            throw new Error(`${seen}: an invalid project reached the upstream`)
        }
      },
    ),
    RUNS,
  )
  t.pass('no request answered 500')
})

t.test('with auth on, no credentials of any shape reach an upstream or a 500', async (t) => {
  const dir = await tempDir(t, 'pt-fuzz-auth-')
  const htpasswd = join(dir, 'htpasswd')
  await writeFile(htpasswd, htpasswdLine('alice', PASSWORDS.alice))
  const { registry, index, app } = await fuzzedApp(
    t,
    `auth: { htpasswd: ${htpasswd} }
access:
  - { registry: "*", repository: "**", users: [alice] }
  - { index: "*", project: "*", users: [alice] }
`,
  )
  const authorization = fc.oneof(
    headerText,
    headerText.map((s) => `Bearer ${s}`),
    fc
      .tuple(fc.constantFrom('alice', 'bob', ''), fc.string({ maxLength: 40 }))
      .map(([user, password]) => basic(user, password)),
    fc.constant(basic('alice', `${PASSWORDS.alice}x`)),
  )
  await fc.assert(
    fc.asyncProperty(
      fc.constantFrom(
        '/v2/',
        '/v2/library/app/manifests/v1',
        '/simple/app/',
        '/-/token?scope=repository:library/app:pull',
      ),
      authorization,
      async (url, header) => {
        const before = registry.count() + index.count()
        const res = await app.app.inject({ method: 'GET', url, headers: { authorization: header } })
        if (res.statusCode >= 500) throw new Error(`${url} answered ${res.statusCode}: ${res.body}`)
        if (registry.count() + index.count() !== before)
          throw new Error(`${url} with "${header}" reached an upstream`)
        if (res.statusCode === 200 && url !== '/-/token?scope=repository:library/app:pull')
          throw new Error(`${url} with "${header}" was served`)
      },
    ),
    RUNS,
  )
  t.pass('no guessed credentials were served, none answered 500')
})

function decodeSafely(text: string): string {
  try {
    return decodeURIComponent(text)
  } catch {
    return text
  }
}
