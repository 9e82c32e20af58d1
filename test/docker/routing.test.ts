import t from 'tap'
import { OciError } from '../../src/docker/errors.ts'
import { routeRegistry } from '../../src/docker/routing.ts'

const registries = [
  { name: 'docker.io', default: true },
  { name: 'ghcr.io', default: false },
  { name: 'localhost:5000', default: false },
]

t.test('?ns= picks the registry (containerd mirrors)', async (t) => {
  t.same(routeRegistry(registries, 'org/app', 'ghcr.io'), {
    registry: registries[1],
    repository: 'org/app',
  })
  t.same(routeRegistry(registries, 'busybox', 'docker.io'), {
    registry: registries[0],
    repository: 'library/busybox',
  })
  t.equal(
    routeRegistry(registries, 'app', 'quay.io'),
    undefined,
    'an unconfigured ns is not routed anywhere',
  )
})

t.test('a first path segment equal to a registry name picks it', async (t) => {
  t.same(routeRegistry(registries, 'ghcr.io/org/app', undefined), {
    registry: registries[1],
    repository: 'org/app',
  })
  t.same(routeRegistry(registries, 'localhost:5000/team/tool', undefined), {
    registry: registries[2],
    repository: 'team/tool',
  })
  t.same(routeRegistry(registries, 'docker.io/busybox', undefined), {
    registry: registries[0],
    repository: 'library/busybox',
  })
})

t.test(
  'otherwise the default registry, with library/ for one-segment names on docker.io',
  async (t) => {
    t.same(routeRegistry(registries, 'busybox', undefined), {
      registry: registries[0],
      repository: 'library/busybox',
    })
    t.same(routeRegistry(registries, 'bitnami/redis', undefined), {
      registry: registries[0],
      repository: 'bitnami/redis',
    })
    t.same(routeRegistry(registries, 'ghcr.io', undefined), {
      registry: registries[0],
      repository: 'library/ghcr.io',
    })
    t.equal(
      routeRegistry([{ name: 'ghcr.io', default: false }], 'app', undefined),
      undefined,
      'no default, no route',
    )
  },
)

t.test('OCI errors carry the spec status and body', async (t) => {
  const error = new OciError('MANIFEST_UNKNOWN', { tag: 'nope' })
  t.equal(error.status, 404)
  t.same(error.body(), {
    errors: [{ code: 'MANIFEST_UNKNOWN', message: 'manifest unknown', detail: { tag: 'nope' } }],
  })
  const upstream = new OciError('UNAUTHORIZED', undefined, {
    status: 502,
    message: 'upstream docker.io refused our credentials',
  })
  t.equal(upstream.status, 502)
  t.same(upstream.body(), {
    errors: [{ code: 'UNAUTHORIZED', message: 'upstream docker.io refused our credentials' }],
  })
})
