/**
 * Event-driven refresh: a real Distribution registry sends its push
 * notifications to pullthrough's webhook; a tag pushed again upstream is
 * served with its new manifest at once, long before tagTTL runs out. Harbor's
 * webhook format is accepted too; bad requests are refused clearly.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import { join } from 'node:path'
import t from 'tap'
import { request } from 'undici'
import { startApp, type TestApp } from '../helpers/app.ts'
import { tempDir } from '../helpers/config.ts'
import { buildImage } from '../helpers/images.ts'
import { startRegistry } from '../helpers/registry.ts'

const TOKEN = 'webhook-test-admin-token-01'
/** How long the registry may take to deliver a notification (it retries after 1 s). */
const DELIVERY_MS = 15_000

async function tagDigest(app: TestApp, mediaType: string): Promise<string | undefined> {
  const res = await request(`${app.url}/v2/library/app/manifests/1.0`, {
    headers: { accept: mediaType },
  })
  await res.body.dump()
  return res.headers['docker-content-digest'] as string | undefined
}

async function hook(app: TestApp, body: unknown, query = '', token: string | null = TOKEN) {
  const res = await request(`${app.url}/-/webhooks/distribution${query}`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      ...(token === null ? {} : { authorization: `Bearer ${token}` }),
    },
    body: JSON.stringify(body),
  })
  return { status: res.statusCode, body: (await res.body.json()) as Record<string, unknown> }
}

t.test(
  'a tag pushed upstream is served new at once, through the registry notification',
  async (t) => {
    const registry = await startRegistry(t)
    const dir = await tempDir(t, 'pt-img-')
    const first = await registry.pushImage(
      await buildImage(join(dir, 'first'), { layers: [4096] }),
      'library/app:1.0',
    )
    const app = await startApp(t, {
      yaml: `docker:
  registries:
    - { name: docker.io, default: true, tagTTL: 1h, upstreams: [{ url: "${registry.url}" }] }
admin: { token: "${TOKEN}" }
`,
    })
    await registry.notify(`${app.url}/-/webhooks/distribution?registry=docker.io`, TOKEN)
    t.equal(await tagDigest(app, first.mediaType), first.digest)

    const second = await registry.pushImage(
      await buildImage(join(dir, 'second'), { layers: [4096] }),
      'library/app:1.0',
    )
    t.not(second.digest, first.digest)
    const deadline = Date.now() + DELIVERY_MS
    let served = await tagDigest(app, first.mediaType)
    while (served !== second.digest && Date.now() < deadline) {
      await sleep(200)
      served = await tagDigest(app, first.mediaType)
    }
    t.equal(served, second.digest, 'the new manifest, with tagTTL an hour away')
    t.ok(
      app.logs.lines.some((l) => l.msg === 'push notification' && Number(l.refreshed) >= 1),
      'the notification was logged',
    )

    // Harbor's format, posted by hand: the tag is fetched again and reported.
    const harbor = await hook(app, {
      type: 'PUSH_ARTIFACT',
      event_data: {
        repository: { repo_full_name: 'library/app' },
        resources: [{ tag: '1.0' }, { digest: 'sha256:only-a-digest' }],
      },
    })
    t.same(harbor, {
      status: 200,
      body: {
        registry: 'docker.io',
        refreshed: [{ repository: 'library/app', tag: '1.0', digest: second.digest }],
        ignored: 0,
      },
    })
    // Distribution posts the event before it moves the tag: a notification that
    // runs ahead of its tag is answered once the tag points at the pushed digest.
    const third = await registry.pushImage(
      await buildImage(join(dir, 'third'), { layers: [4096] }),
      'library/app:next',
    )
    const stored = await request(`${registry.url}/v2/library/app/manifests/${third.digest}`, {
      headers: { accept: third.mediaType },
    })
    const manifest = Buffer.from(await stored.body.arrayBuffer())
    const ahead = hook(app, {
      events: [
        { action: 'push', target: { repository: 'library/app', tag: '1.0', digest: third.digest } },
      ],
    })
    await sleep(300)
    const put = await request(`${registry.url}/v2/library/app/manifests/1.0`, {
      method: 'PUT',
      headers: { 'content-type': third.mediaType },
      body: manifest,
    })
    await put.body.dump()
    t.equal(put.statusCode, 201)
    t.match(
      await ahead,
      { status: 200, body: { refreshed: [{ tag: '1.0', digest: third.digest }] } },
      'the tag is asked again until it catches up with the push',
    )
    const never = `sha256:${'0'.repeat(64)}`
    t.match(
      await hook(app, {
        events: [
          { action: 'push', target: { repository: 'library/app', tag: '1.0', digest: never } },
        ],
      }),
      { status: 200, body: { refreshed: [{ tag: '1.0', digest: third.digest }] } },
      'a tag pushed again since is reported as it is now',
    )
    t.ok(
      app.logs.lines.some((l) => l.level === 40 && l.pushed === never),
      'and the difference is logged',
    )

    const gone = await hook(app, {
      events: [{ action: 'push', target: { repository: 'library/nothing', tag: 'v9' } }],
    })
    t.match(gone, {
      status: 200,
      body: { refreshed: [{ repository: 'library/nothing', tag: 'v9', error: String }] },
    })
  },
)

t.test('the webhook refuses what it cannot use', async (t) => {
  const registry = await startRegistry(t)
  const app = await startApp(t, {
    yaml: `docker: { registries: [{ name: docker.io, default: true, upstreams: [{ url: "${registry.url}" }] }] }
admin: { token: "${TOKEN}" }
`,
  })
  t.match(await hook(app, { events: [] }, '', null), {
    status: 401,
    body: { error: 'PT_API_UNAUTHORIZED' },
  })
  t.match(await hook(app, { hello: 'world' }), {
    status: 400,
    body: { message: /neither a Distribution notification nor a Harbor webhook/ },
  })
  t.match(await hook(app, { events: [] }, '?registry=quay.io'), {
    status: 400,
    body: { message: /no configured registry is named quay\.io/ },
  })
  t.same(
    await hook(app, {
      events: [
        { action: 'pull', target: { repository: 'library/app', tag: '1.0' } },
        { action: 'push', target: { repository: 'library/app' } },
        { action: 'push', target: { repository: 'Bad Name', tag: '1.0' } },
      ],
    }),
    { status: 200, body: { registry: 'docker.io', refreshed: [], ignored: 1 } },
    'pulls and pushes by digest are not refreshes; an invalid name is ignored',
  )
  const open = await startApp(t, {
    yaml: `docker: { registries: [{ name: docker.io, default: true, upstreams: [{ url: "${registry.url}" }] }] }\n`,
  })
  t.match(await hook(open, { events: [] }, '', null), {
    status: 403,
    body: { error: 'PT_API_FORBIDDEN' },
  })
})
