/**
 * Debian's nginx (/usr/sbin/nginx) for the benchmarks: started on a free
 * 127.0.0.1 port in the foreground (`daemon off`) with a prefix of its own
 * under the system temp dir (conf, pid, logs, temp paths), and stopped by the
 * PID of its master process, which then stops its workers. The prefix is
 * world-readable: started as root, nginx runs its workers as an unprivileged
 * user, and they must reach it.
 *
 * `startNginx` takes the server block's directives; `startRegistryProxy` is a
 * reverse proxy in front of a registry with a per-request rate limit, to model
 * an upstream across a WAN.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { rmSync } from 'node:fs'
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort } from '../test/helpers/free-port.ts'

const NGINX = '/usr/sbin/nginx'
const START_TIMEOUT_MS = 15_000
const START_POLL_MS = 50
const STOP_TIMEOUT_MS = 10_000
const HTTP_TIMEOUT_MS = 5_000
/** How much of nginx's stderr and error log is kept for error messages. */
const LOG_TAIL_CHARS = 8192

export interface NginxOptions {
  /** Directives inside `server { }`, after its `listen`. */
  readonly server: string
  /** Directives inside `http { }` before the server block, e.g. `sendfile on;` or an `upstream`. */
  readonly http?: string
  /** Default 2, one per core of the benchmark machine. */
  readonly workerProcesses?: number
  /** Write an access log (`accessLog` of the result); default true. */
  readonly accessLog?: boolean
}

export interface Nginx {
  /** `http://127.0.0.1:PORT` */
  readonly url: string
  /** `127.0.0.1:PORT` */
  readonly host: string
  /** PID of the master process. */
  readonly pid: number | undefined
  /** Path of the access log (`access_log off` when started without one). */
  readonly accessLog: string
  /** SIGTERM to the master, SIGKILL if it has not exited in 10 s; then removes the prefix. */
  stop(): Promise<void>
}

interface Running {
  readonly child: ChildProcess
  readonly prefix: string
}

/** Every nginx not stopped yet: on exit each master gets SIGTERM (it stops its workers). */
const running = new Set<Running>()
process.on('exit', () => {
  for (const { child, prefix } of running) {
    child.kill('SIGTERM')
    rmSync(prefix, { recursive: true, force: true })
  }
})

/** nginx's version, e.g. `1.22.1` (`nginx -v` prints it on stderr). */
export function nginxVersion(): string {
  const { stderr } = spawnSync(NGINX, ['-v'], { encoding: 'utf8' })
  return /nginx\/(\S+)/.exec(stderr)?.[1] ?? 'unknown'
}

/** Starts nginx with `options`; resolves once it answers HTTP (any status) on its port. */
export async function startNginx(options: NginxOptions): Promise<Nginx> {
  const prefix = await mkdtemp(join(tmpdir(), 'pt-bench-nginx-'))
  await chmod(prefix, 0o755)
  const port = await freePort()
  const conf = join(prefix, 'nginx.conf')
  const accessLog = join(prefix, 'access.log')
  const errorLog = join(prefix, 'error.log')
  const temp = join(prefix, 'tmp')
  await writeFile(
    conf,
    `worker_processes ${options.workerProcesses ?? 2};
daemon off;
pid ${join(prefix, 'nginx.pid')};
error_log ${errorLog};
events { worker_connections 1024; }
http {
  access_log ${options.accessLog === false ? 'off' : accessLog};
  client_body_temp_path ${temp};
  proxy_temp_path ${temp};
  fastcgi_temp_path ${temp};
  uwsgi_temp_path ${temp};
  scgi_temp_path ${temp};
${options.http ?? ''}
  server {
    listen 127.0.0.1:${port};
${options.server}
  }
}
`,
  )
  const child = spawn(NGINX, ['-c', conf, '-p', prefix], { stdio: ['ignore', 'ignore', 'pipe'] })
  const entry = { child, prefix }
  running.add(entry)
  let stderr = ''
  child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-LOG_TAIL_CHARS)))

  const stop = async () => {
    if (!running.delete(entry)) return
    if (child.exitCode === null && child.signalCode === null) {
      const exited = once(child, 'exit')
      child.kill('SIGTERM')
      const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS)
      await exited
      clearTimeout(timer)
    }
    await rm(prefix, { recursive: true, force: true })
  }

  const url = `http://127.0.0.1:${port}`
  const deadline = Date.now() + START_TIMEOUT_MS
  for (;;) {
    const failed = child.exitCode !== null ? 'exited' : Date.now() >= deadline ? 'timed out' : ''
    if (failed) {
      const log = await readFile(errorLog, 'utf8').catch(() => '')
      await stop()
      throw new Error(`nginx ${failed} on start: ${stderr}${log.slice(-LOG_TAIL_CHARS)}`)
    }
    const status = await fetch(`${url}/`, { signal: AbortSignal.timeout(HTTP_TIMEOUT_MS) })
      .then(async (res) => {
        await res.arrayBuffer()
        return res.status
      })
      .catch(() => 0)
    if (status !== 0) break
    await new Promise((resolve) => setTimeout(resolve, START_POLL_MS))
  }
  return { url, host: `127.0.0.1:${port}`, pid: child.pid, accessLog, stop }
}

/**
 * A reverse proxy to the registry at `upstream` (`http://host:port`) that sends
 * each response at no more than `bytesPerSecond` (nginx `limit_rate`, per
 * request: per connection, as HTTP/1.1 carries one request at a time).
 *
 * Requests pass as they are, HEAD and Range included (nginx only rewrites them
 * when it caches, and this proxy does not), and so do response headers such as
 * Docker-Content-Digest, Content-Range and Location. Distribution builds its
 * absolute Location URLs (upload sessions) from the Host header, so the
 * client's Host is passed and they name the proxy. Connections to the
 * registry are HTTP/1.1 keep-alive.
 *
 * Responses are buffered in memory only (a few MiB per request, never a temp
 * file) and still streamed as they arrive: nginx 1.22 ignores `limit_rate` on
 * an unbuffered proxied response (`proxy_buffering off` sends a 300 MB body
 * at full loopback speed), so buffering stays on. Each write is followed by a
 * pause of its size over the rate, rounded down to whole milliseconds; writes
 * of up to 2 MiB (large buffers) keep that rounding small.
 */
export function startRegistryProxy(upstream: string, bytesPerSecond: number): Promise<Nginx> {
  const { host } = new URL(upstream)
  return startNginx({
    accessLog: false,
    http: `  upstream registry {
    server ${host};
    keepalive 32;
    keepalive_requests 1000000;
  }
  keepalive_requests 1000000;`,
    server: `    client_max_body_size 0;
    location / {
      proxy_pass http://registry;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $http_host;
      proxy_redirect off;
      proxy_request_buffering off;
      proxy_buffering on;
      proxy_max_temp_file_size 0;
      proxy_buffer_size 64k;
      proxy_buffers 8 1m;
      proxy_busy_buffers_size 4m;
      limit_rate ${Math.round(bytesPerSecond)};
    }`,
  })
}
