import t from 'tap'
import { Agent, fetch } from 'undici'
import { startApp } from '../helpers/app.ts'
import { selfSignedCert } from '../helpers/tls-upstream.ts'

t.test('serves HTTPS with the configured certificate and key', async (t) => {
  const { certFile: cert, keyFile: key, cert: ca } = await selfSignedCert(t)
  const { url } = await startApp(t, {
    yaml: `server: { tls: { cert: "${cert}", key: "${key}" } }\n`,
  })
  t.match(url, /^https:\/\/127\.0\.0\.1:\d+$/)
  const agent = new Agent({ connect: { ca } })
  t.teardown(() => agent.close())
  const res = await fetch(`${url}/healthz`, { dispatcher: agent })
  t.equal(res.status, 200)
  t.same(await res.json(), { status: 'ok' })
})

t.test('an unreadable TLS file is a config error naming the key', async (t) => {
  await t.rejects(
    startApp(t, {
      yaml: 'server: { tls: { cert: /nonexistent/tls.crt, key: /nonexistent/tls.key } }\n',
    }),
    {
      code: 'PT_CONFIG_INVALID',
      message: 'server.tls.cert: cannot read the file (ENOENT)',
    },
  )
})
