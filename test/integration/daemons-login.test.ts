/**
 * The daemons sign in as they do with any registry: `docker login` then
 * `docker pull` with a real dockerd (the registry token flow), and
 * containerd's ctr both with `--user` and with a Basic `Authorization`
 * header in a hosts.toml mirror. Wrong credentials fail at login.
 */
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { PASSWORDS, securedRegistry } from '../helpers/access.ts'
import { daemonDir, startContainerd } from '../helpers/containerd.ts'
import { startDockerd } from '../helpers/dockerd.ts'
import { rm } from 'node:fs/promises'

t.test('docker login, then docker pull of what the user may pull', async (t) => {
  const { host, digest, app } = await securedRegistry(t)
  const dockerd = await startDockerd(t)
  const wrong = await dockerd.docker(['login', host, '-u', 'alice', '-p', 'not-her-password'])
  t.not(wrong.code, 0, 'wrong credentials fail at login')
  t.match(wrong.stderr, /unauthorized|incorrect username/i)
  const anonymous = await dockerd.docker(['pull', `${host}/myorg/secret:v1`])
  t.not(anonymous.code, 0, 'no pull before login')

  const login = await dockerd.docker(['login', host, '-u', 'alice', '-p', PASSWORDS.alice])
  t.equal(login.code, 0, login.stderr)
  t.match(login.stdout, /Login Succeeded/)
  const pull = await dockerd.docker(['pull', `${host}/myorg/secret:v1`])
  t.equal(pull.code, 0, pull.stderr)
  t.match(pull.stdout, `Digest: ${digest}`)
  t.ok(
    app.logs.lines.some((l) => l.msg === 'pull' && l.repository === 'myorg/secret'),
    'the pull went through pullthrough',
  )

  // bob may pull library/* but not myorg/**.
  await dockerd.docker(['logout', host])
  const bob = await dockerd.docker(['login', host, '-u', 'bob', '-p', PASSWORDS.bob])
  t.equal(bob.code, 0, bob.stderr)
  const denied = await dockerd.docker(['pull', `${host}/myorg/secret:v1`])
  t.not(denied.code, 0)
  t.match(denied.stderr, /denied/i)
  const allowed = await dockerd.docker(['pull', `${host}/library/app:v1`])
  t.equal(allowed.code, 0, allowed.stderr)
})

t.test('ctr pulls with --user and through a hosts.toml mirror with a Basic header', async (t) => {
  const { host, digest } = await securedRegistry(t)
  const containerd = await startContainerd(t)
  const ref = `${host}/myorg/secret:v1`
  const anonymous = await containerd.ctr(['images', 'pull', '--plain-http', ref])
  t.not(anonymous.code, 0, 'no credentials, no pull')
  const withUser = await containerd.ctr([
    'images',
    'pull',
    '--plain-http',
    '--user',
    `alice:${PASSWORDS.alice}`,
    ref,
  ])
  t.equal(withUser.code, 0, withUser.stderr)
  t.match((await containerd.ctr(['images', 'ls'])).stdout, digest)

  // A mirror for docker.io that sends Basic credentials on every request.
  const hostsDir = await daemonDir('pt-hosts-')
  t.teardown(() => rm(hostsDir, { recursive: true, force: true }))
  await mkdir(join(hostsDir, 'docker.io'))
  const header = `Basic ${Buffer.from(`bob:${PASSWORDS.bob}`).toString('base64')}`
  await writeFile(
    join(hostsDir, 'docker.io', 'hosts.toml'),
    `[host."http://${host}"]\n  capabilities = ["pull", "resolve"]\n  [host."http://${host}".header]\n    Authorization = ["${header}"]\n`,
  )
  const mirrored = await containerd.ctr([
    'images',
    'pull',
    '--hosts-dir',
    hostsDir,
    'docker.io/library/app:v1',
  ])
  t.equal(mirrored.code, 0, mirrored.stderr)
})
