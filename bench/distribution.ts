/**
 * CNCF Distribution in proxy mode (Debian's docker-registry with a `proxy:`
 * section), the Go anchor the blob benchmark measures pullthrough against:
 * started on a free 127.0.0.1 port with a filesystem store of its own,
 * pulling through `remote` on a miss; stopped by PID (shared.ts's stop).
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { freePort } from '../test/helpers/free-port.ts'
import { stop } from './shared.ts'

const START_TIMEOUT_MS = 15_000
const START_POLL_MS = 50

export interface DistributionProxy {
  readonly url: string
  readonly child: ChildProcess
  stop(): Promise<void>
}

export async function startDistributionProxy(
  dir: string,
  remote: string,
): Promise<DistributionProxy> {
  await mkdir(join(dir, 'data'), { recursive: true })
  const port = await freePort()
  const config = join(dir, 'config.yml')
  await writeFile(
    config,
    `version: 0.1
log: { level: error, accesslog: { disabled: true } }
storage: { filesystem: { rootdirectory: ${join(dir, 'data')} }, cache: { blobdescriptor: inmemory } }
http: { addr: 127.0.0.1:${port} }
proxy: { remoteurl: ${remote} }
`,
  )
  const child = spawn('docker-registry', ['serve', config], { stdio: ['ignore', 'ignore', 'pipe'] })
  let log = ''
  child.stderr.on('data', (d: Buffer) => (log = (log + d.toString()).slice(-8192)))
  const url = `http://127.0.0.1:${port}`
  const deadline = Date.now() + START_TIMEOUT_MS
  for (;;) {
    if (child.exitCode !== null) throw new Error(`docker-registry exited: ${log}`)
    if (Date.now() >= deadline) throw new Error(`docker-registry did not start: ${log}`)
    const ok = await fetch(`${url}/v2/`)
      .then(async (res) => {
        await res.arrayBuffer()
        return res.ok
      })
      .catch(() => false)
    if (ok) break
    await new Promise((resolve) => setTimeout(resolve, START_POLL_MS))
  }
  return { url, child, stop: () => stop(child) }
}
