import { execFile } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import t from 'tap'
import { Agent, fetch } from 'undici'
import { startApp } from '../helpers/app.ts'
import { tempDir } from '../helpers/config.ts'

const run = promisify(execFile)

t.test('serves HTTPS with the configured certificate and key', async (t) => {
  const dir = await tempDir(t)
  const cert = join(dir, 'tls.crt')
  const key = join(dir, 'tls.key')
  await run('openssl', [
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-days',
    '1',
    '-subj',
    '/CN=127.0.0.1',
    '-addext',
    'subjectAltName=IP:127.0.0.1',
    '-keyout',
    key,
    '-out',
    cert,
  ])
  const { url } = await startApp(t, {
    yaml: `server: { tls: { cert: "${cert}", key: "${key}" } }\n`,
  })
  t.match(url, /^https:\/\/127\.0\.0\.1:\d+$/)
  const agent = new Agent({ connect: { ca: await readFile(cert) } })
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
