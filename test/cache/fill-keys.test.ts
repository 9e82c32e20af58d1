/**
 * Fills are shared per digest and source: a client of one registry never
 * joins a fill that another registry's upstreams answer, and a client that
 * joined a fill for another repository of its registry, which ended in "not
 * found" or "denied", asks once more with its own repository.
 */
import type { ServerResponse } from 'node:http'
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { digestOf } from '../../src/storage/digest.ts'
import { startApp } from '../helpers/app.ts'
import { fakeUpstream, serveBytes } from '../helpers/fake-upstream.ts'
import { get } from '../helpers/http.ts'
import { randomBlob } from '../helpers/streams.ts'

/** How long the refusing upstream takes to answer. */
const SLOW_ANSWER_MS = 1500
/** The legitimate pull starts this long after the hostile one, while that one waits. */
const LEGIT_DELAY_MS = 200

/** Answers `status` after SLOW_ANSWER_MS (a tarpit that ends in a refusal). */
function slowly(status: number) {
  return async (res: ServerResponse) => {
    await sleep(SLOW_ANSWER_MS)
    res.writeHead(status).end('no')
  }
}

t.test(
  "another registry's slow 404 for the same digest does not fail a pull, and its upstream is asked",
  async (t) => {
    const blob = randomBlob(256 * 1024)
    const good = await fakeUpstream(t, serveBytes(blob.data))
    const tarpit = await fakeUpstream(t, (_req, res) => slowly(404)(res))
    const { url } = await startApp(t, {
      yaml: `docker:
  registries:
    - { name: docker.io, default: true, upstreams: [{ url: "${good.url}" }] }
    - { name: other.example, upstreams: [{ url: "${tarpit.url}" }] }
`,
    })
    const hostile = get(`${url}/v2/anything/here/blobs/${blob.digest}?ns=other.example`)
    await sleep(LEGIT_DELAY_MS)
    const legit = await get(`${url}/v2/library/app/blobs/${blob.digest}`)
    t.equal(legit.status, 200, 'the legitimate pull succeeds')
    t.equal(digestOf(legit.body), blob.digest)
    t.equal(good.count(), 1, "the legitimate registry's upstream was asked")
    t.equal((await hostile).status, 404, 'the other registry still answers its own 404')
    t.equal(tarpit.count(), 1)
  },
)

for (const status of [404, 403]) {
  t.test(
    `a client that joined a fill for another repository which ended in ${status} retries with its own`,
    async (t) => {
      const blob = randomBlob(256 * 1024)
      const serve = serveBytes(blob.data)
      const up = await fakeUpstream(t, (req, res) => {
        if (req.url?.startsWith('/v2/secret/')) return slowly(status)(res)
        return serve(req, res)
      })
      const { url } = await startApp(t, {
        yaml: `docker: { registries: [{ name: docker.io, default: true, upstreams: [{ url: "${up.url}" }] }] }\n`,
      })
      const hostile = get(`${url}/v2/secret/repo/blobs/${blob.digest}`)
      await sleep(LEGIT_DELAY_MS)
      const legit = await get(`${url}/v2/library/app/blobs/${blob.digest}`)
      t.equal(legit.status, 200, 'the legitimate pull succeeds')
      t.equal(digestOf(legit.body), blob.digest)
      t.equal(up.count('/v2/library/app/'), 1, 'its own repository was asked once')
      t.equal(up.count('/v2/secret/'), 1, 'the refusing repository was asked once')
      t.not((await hostile).status, 200)
    },
  )
}

t.test('clients of the same repository share one fill', async (t) => {
  const blob = randomBlob(1024 * 1024)
  const up = await fakeUpstream(t, async (req, res) => {
    await sleep(300)
    return serveBytes(blob.data)(req, res)
  })
  const { url } = await startApp(t, {
    yaml: `docker: { registries: [{ name: docker.io, default: true, upstreams: [{ url: "${up.url}" }] }] }\n`,
  })
  const results = await Promise.all([
    get(`${url}/v2/library/app/blobs/${blob.digest}`),
    get(`${url}/v2/library/app/blobs/${blob.digest}`),
    get(`${url}/v2/library/other/blobs/${blob.digest}`),
  ])
  t.ok(results.every((r) => r.status === 200 && digestOf(r.body) === blob.digest))
  t.equal(up.count(), 1, 'one upstream request for the three')
})
