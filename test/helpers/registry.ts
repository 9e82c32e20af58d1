/**
 * A real CNCF Distribution registry (Debian's docker-registry) on a free
 * loopback port, as an upstream for tests; stopped by its PID at test end.
 * `stop` and `start` take it down and bring it back on the same port with the
 * same data, for failover tests. With `auth` it sits behind Docker Hub-style
 * Bearer token auth served by the tests' own token server.
 * `pushBlob` uses the registry's own monolithic upload API; `pushImage` uses skopeo.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { Test } from 'tap'
import { request } from 'undici'
import { tempDir } from './config.ts'
import { pushImage, type ImageSource, type PushedImage, type PushOptions } from './images.ts'
import { startTokenServer, type TokenServer } from './token-server.ts'
import { freePort } from './free-port.ts'

/** How long the registry may take to listen. */
const START_TIMEOUT_MS = 15_000
/** How much of the registry's log is kept for error messages. */
const LOG_TAIL_CHARS = 8192
/** The registry's `auth.token.service`: the `aud` of its tokens. */
const TOKEN_SERVICE = 'pullthrough-test-registry'

export interface RegistryOptions {
  /** Put the registry behind Bearer token auth; these Basic credentials get push. */
  readonly auth?: { readonly username: string; readonly password: string }
}

export interface RegistryAuth {
  readonly tokenServer: TokenServer
  /** The `service` of the registry's challenge and the `aud` of its tokens. */
  readonly service: string
  readonly username: string
  readonly password: string
  /** `username:password`, as skopeo's --creds wants it. */
  readonly creds: string
}

export interface TestRegistry {
  readonly url: string
  /** `127.0.0.1:PORT`, the registry part of image references. */
  readonly host: string
  /** Set when started with `auth`. */
  readonly auth: RegistryAuth | undefined
  pushBlob(repository: string, digest: string, data: Buffer): Promise<void>
  /** Pushes a built image to `repo:tag` here, with the auth credentials unless `creds: undefined`. */
  pushImage(image: ImageSource, ref: string, options?: PushOptions): Promise<PushedImage>
  /** Deletes a manifest by digest (and so every tag pointing at it), as an upstream that removed a release. */
  deleteManifest(repository: string, digest: string): Promise<void>
  /** SIGKILL and wait for the exit: connections are refused from then on. */
  stop(): Promise<void>
  /** Starts it again on the same port with the same data; a no-op while running. */
  start(): Promise<void>
  /** Restarts it sending push notifications to `url` with `Authorization: Bearer <token>`. */
  notify(url: string, token: string): Promise<void>
}

async function startAuth(
  t: Test,
  credentials: NonNullable<RegistryOptions['auth']>,
): Promise<RegistryAuth> {
  const tokenServer = await startTokenServer(t, credentials)
  return {
    tokenServer,
    service: TOKEN_SERVICE,
    ...credentials,
    creds: `${credentials.username}:${credentials.password}`,
  }
}

function configYaml(dir: string, port: number, auth: RegistryAuth | undefined): string {
  // Info level for the "listening on" line that says the port is bound; no access log.
  let yaml = `version: 0.1
log: { level: info, accesslog: { disabled: true } }
storage: { filesystem: { rootdirectory: ${join(dir, 'data')} }, delete: { enabled: true } }
http: { addr: 127.0.0.1:${port} }
`
  if (auth) {
    yaml += `auth:
  token:
    realm: ${auth.tokenServer.realm}
    service: ${auth.service}
    issuer: ${auth.tokenServer.issuer}
    rootcertbundle: ${auth.tokenServer.rootCertBundle}
`
  }
  return yaml
}

function running(child: ChildProcess | undefined): child is ChildProcess {
  return child !== undefined && child.exitCode === null && child.signalCode === null
}

/** Spawns docker-registry and resolves once it logs that it listens. */
async function spawnRegistry(config: string): Promise<ChildProcess> {
  const child = spawn('docker-registry', ['serve', config], { stdio: ['ignore', 'ignore', 'pipe'] })
  let log = ''
  child.stderr.on('data', (d: Buffer) => (log = (log + d.toString()).slice(-LOG_TAIL_CHARS)))
  await new Promise<void>((resolve, reject) => {
    const onData = () => {
      if (!log.includes('listening on')) return
      done()
      resolve()
    }
    const onExit = (code: number | null) => {
      done()
      reject(new Error(`docker-registry exited with ${String(code)}: ${log}`))
    }
    const timer = setTimeout(() => {
      done()
      child.kill('SIGKILL')
      reject(new Error(`docker-registry did not start in ${START_TIMEOUT_MS} ms: ${log}`))
    }, START_TIMEOUT_MS)
    const done = () => {
      clearTimeout(timer)
      child.stderr.off('data', onData)
      child.off('exit', onExit)
    }
    child.stderr.on('data', onData)
    child.once('exit', onExit)
  })
  return child
}

/** Starts a registry (behind token auth with `auth`) for this test; killed by PID at test end. */
export async function startRegistry(t: Test, options: RegistryOptions = {}): Promise<TestRegistry> {
  const dir = await tempDir(t, 'pt-registry-')
  const port = await freePort()
  const auth = options.auth ? await startAuth(t, options.auth) : undefined
  const config = join(dir, 'config.yml')
  await writeFile(config, configYaml(dir, port, auth))
  let child: ChildProcess | undefined

  const start = async () => {
    if (running(child)) return
    child = await spawnRegistry(config)
  }
  const stop = async () => {
    if (!running(child)) return
    const exited = once(child, 'exit')
    child.kill('SIGKILL')
    await exited
  }
  t.teardown(stop)
  await start()

  const url = `http://127.0.0.1:${port}`
  const host = `127.0.0.1:${port}`

  /** Authorization for a push with the auth credentials, or none for an open registry. */
  const pushHeaders = async (
    repository: string,
    actions = 'pull,push',
  ): Promise<Record<string, string>> => {
    if (!auth) return {}
    const realm = new URL(auth.tokenServer.realm)
    realm.searchParams.set('service', auth.service)
    realm.searchParams.set('scope', `repository:${repository}:${actions}`)
    const basic = Buffer.from(auth.creds).toString('base64')
    const res = await request(realm, { headers: { authorization: `Basic ${basic}` } })
    const body = (await res.body.json()) as { token: string }
    return { authorization: `Bearer ${body.token}` }
  }

  return {
    url,
    host,
    auth,
    stop,
    start,
    notify: async (notifyUrl, token) => {
      await stop()
      await writeFile(
        config,
        `${configYaml(dir, port, auth)}notifications:
  endpoints:
    - name: pullthrough
      url: ${notifyUrl}
      headers: { Authorization: ["Bearer ${token}"] }
      timeout: 2s
      threshold: 3
      backoff: 1s
`,
      )
      await start()
    },
    pushImage: (image, ref, pushOptions = {}) =>
      pushImage(t, image, `${host}/${ref}`, { creds: auth?.creds, ...pushOptions }),
    deleteManifest: async (repository, digest) => {
      const res = await request(`${url}/v2/${repository}/manifests/${digest}`, {
        method: 'DELETE',
        headers: await pushHeaders(repository, 'pull,push,delete'),
      })
      await res.body.dump()
      if (res.statusCode !== 202) throw new Error(`manifest delete answered ${res.statusCode}`)
    },
    pushBlob: async (repository, digest, data) => {
      const headers = await pushHeaders(repository)
      // The registry's two-step upload: open a session, then PUT the bytes with their digest.
      const start = await request(`${url}/v2/${repository}/blobs/uploads/`, {
        method: 'POST',
        headers,
      })
      await start.body.dump()
      const location = start.headers.location
      if (start.statusCode !== 202 || typeof location !== 'string') {
        throw new Error(`blob upload start answered ${start.statusCode}`)
      }
      const target = new URL(location, url)
      target.searchParams.set('digest', digest)
      const res = await request(target, {
        method: 'PUT',
        headers: {
          ...headers,
          'content-type': 'application/octet-stream',
          'content-length': String(data.length),
        },
        body: data,
      })
      await res.body.dump()
      if (res.statusCode !== 201) throw new Error(`blob upload answered ${res.statusCode}`)
    },
  }
}
