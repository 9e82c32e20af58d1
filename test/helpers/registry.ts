/**
 * A real CNCF Distribution registry (Debian's docker-registry) on a free
 * loopback port, as an upstream for tests; stopped by its PID at test end.
 * `pushBlob` uses the registry's own monolithic upload API.
 */
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { join } from 'node:path'
import type { Test } from 'tap'
import { request } from 'undici'
import { tempDir } from './config.ts'

/** How long the registry may take to answer /v2/. */
const START_TIMEOUT_MS = 15_000

export interface TestRegistry {
  readonly url: string
  pushBlob(repository: string, digest: string, data: Buffer): Promise<void>
}

async function freePort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as { port: number }
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return port
}

export async function startRegistry(t: Test): Promise<TestRegistry> {
  const dir = await tempDir(t, 'pt-registry-')
  const port = await freePort()
  const config = join(dir, 'config.yml')
  await writeFile(
    config,
    `version: 0.1
log: { level: error }
storage: { filesystem: { rootdirectory: ${join(dir, 'data')} } }
http: { addr: 127.0.0.1:${port} }
`,
  )
  const child = spawn('docker-registry', ['serve', config], { stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
  t.teardown(async () => {
    if (child.exitCode !== null || child.signalCode !== null) return
    child.kill('SIGKILL')
    await once(child, 'exit')
  })
  const url = `http://127.0.0.1:${port}`
  const deadline = Date.now() + START_TIMEOUT_MS
  for (;;) {
    try {
      const res = await request(`${url}/v2/`)
      await res.body.dump()
      if (res.statusCode === 200) break
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline || child.exitCode !== null)
      throw new Error(`docker-registry did not start: ${stderr}`)
    await new Promise((r) => setTimeout(r, 50))
  }
  return {
    url,
    pushBlob: async (repository, digest, data) => {
      // The registry's two-step upload: open a session, then PUT the bytes with their digest.
      const start = await request(`${url}/v2/${repository}/blobs/uploads/`, { method: 'POST' })
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
