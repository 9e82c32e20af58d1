/**
 * PyPI against nginx: the warm paths a user notices, each beside nginx serving
 * the same bytes statically in the same run.
 *
 * nginx (sendfile) serves a PEP 503 project page with PAGE_FILES links and
 * one large file it links to (`--file-size`, default 50 MiB of random bytes):
 * it is both the upstream index of pullthrough (the real `serve`, default
 * `verifyOnRead`) and the baseline. After one cold GET of the page and of the
 * file through pullthrough:
 *   - warm file downloads with curl at c=1 (3 downloads) and c=8 (8), MB/s
 *     for nginx and for pullthrough, then for nginx and bare node:http sending
 *     the file in pullthrough's reads with no hash (Node's own ceiling);
 *   - warm GETs of a 16 KiB file with wrk on one connection (the fixed cost
 *     of a request, p50 and p99);
 *   - warm page GETs with wrk (2 threads, 32 connections, `--wrk-seconds`):
 *     requests per second and p99, pullthrough's HTML rendering of the page
 *     against nginx's static copy of the upstream page;
 *   - the stack's ceiling: the page pullthrough rendered, answered from
 *     memory by a bare Fastify route and by bare node:http
 *     (bench/bare-server.ts), each beside nginx again;
 *   - the CPU each of those servers spent per page request (all its threads,
 *     from /proc), steadier than requests per second on a machine whose two
 *     cores wrk shares.
 * Targets from issue #13: files at least 0.8x nginx at c=1 and c=8 (0.95x with
 * `--verify-on-read changed`, none with off); the page at least 0.5x nginx with
 * p99 under 10 ms.
 * Usage: npm run bench:pypi-static [-- --file-size 50MiB --wrk-seconds 5
 *        --verify-on-read on|off|changed --cpu-prof-dir DIR]
 */
import { createHash, randomBytes } from 'node:crypto'
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { parseSize } from '../src/config/units.ts'
import { nginxVersion, startNginx } from './nginx.ts'
import { PAGE_FILES, writeProjectPage } from './pypi-index.ts'
import {
  cleanUp,
  cleanUpOnSignals,
  cpuSeconds,
  load,
  machineLine,
  positiveInt,
  row,
  say,
  startBareServer,
  startPullthrough,
  stop,
  verdict,
  verifyOnReadFlag,
} from './shared.ts'
import { Teardowns } from './teardowns.ts'
import { runWrk, type WrkResult } from './wrk.ts'

const { values } = parseArgs({
  options: {
    'file-size': { type: 'string', default: '50MiB' },
    'wrk-seconds': { type: 'string', default: '5' },
    'verify-on-read': { type: 'string', default: 'on' },
    // Where pullthrough writes a V8 CPU profile of its whole life (bench/profile-summary.ts reads it).
    'cpu-prof-dir': { type: 'string' },
  },
})
const FILE_BYTES = parseSize(values['file-size']) ?? 50 * 2 ** 20
const WRK_SECONDS = positiveInt('wrk-seconds', values['wrk-seconds'])
const CPU_PROF_DIR = values['cpu-prof-dir']
const { mode: VERIFY_MODE, value: VERIFY_ON_READ } = verifyOnReadFlag(values['verify-on-read'])
/** Warm file downloads against nginx, by mode: full verification costs a hash, `changed` does not. */
const FILE_TARGET = { on: 0.8, changed: 0.95, off: undefined }[VERIFY_MODE]
const PROJECT = 'bigfile'
/** A small file too, for the fixed cost of a request: many pure-Python wheels are this size. */
const SMALL_FILE_BYTES = 16 * 1024
const SMALL_FILENAME = `${PROJECT}-0.1.0-py3-none-any.whl`
/** Warm file downloads: [concurrency, downloads]. */
const FILE_RUNS: readonly [number, number][] = [
  [1, 3],
  [8, 8],
]
const PAGE_CONNECTIONS = 32
const PAGE_THREADS = 2

const teardowns = new Teardowns()
cleanUpOnSignals(teardowns)
const work = await mkdtemp(join(tmpdir(), 'pt-bench-pypi-static-'))
teardowns.teardown(() => rm(work, { recursive: true, force: true }))
// nginx workers run as an unprivileged user when started by root: they must read the files.
await chmod(work, 0o755)

/** Writes the upstream's files: the large file and the page listing it among PAGE_FILES links. */
async function makeIndex(root: string): Promise<string> {
  const filesDir = join(root, 'files')
  await mkdir(filesDir, { recursive: true })
  const body = randomBytes(FILE_BYTES)
  const filename = `${PROJECT}-1.0.0-py3-none-any.whl`
  await writeFile(join(filesDir, filename), body)
  const small = randomBytes(SMALL_FILE_BYTES)
  await writeFile(join(filesDir, SMALL_FILENAME), small)
  const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex')
  await writeProjectPage(root, PROJECT, [
    { name: filename, sha256: sha256(body) },
    { name: SMALL_FILENAME, sha256: sha256(small) },
  ])
  return filename
}

/** The URL pullthrough lists for `filename` on its page (pip's JSON). */
async function listedUrl(page: string, filename: string): Promise<string> {
  const res = await fetch(page, { headers: { accept: 'application/vnd.pypi.simple.v1+json' } })
  const listed = (await res.json()) as { files: { filename: string; url: string }[] }
  const file = listed.files.find((f) => f.filename === filename)
  if (!file) throw new Error(`${filename} is not on ${page}`)
  return new URL(file.url, page).href
}

async function wrk(url: string, connections = PAGE_CONNECTIONS): Promise<WrkResult> {
  const result = await runWrk({
    url,
    threads: Math.min(PAGE_THREADS, connections),
    connections,
    durationS: WRK_SECONDS,
    headers: { accept: 'text/html' },
  })
  if (result.non2xx > 0 || result.socketErrors > 0)
    throw new Error(`wrk against ${url}: ${result.non2xx} non-2xx, ${result.socketErrors} errors`)
  return result
}

/** wrk against a server of ours, with the CPU that server spent per request (µs, all its threads). */
async function wrkCpu(
  url: string,
  pid: number | undefined,
): Promise<WrkResult & { cpuUs: number }> {
  const before = await cpuSeconds(pid)
  const result = await wrk(url)
  return { ...result, cpuUs: (((await cpuSeconds(pid)) - before) / result.requests) * 1e6 }
}

try {
  say(`# pullthrough PyPI against nginx, ${new Date().toISOString()}`)
  say(machineLine())
  say(
    `nginx ${nginxVersion()}; one ${FILE_BYTES / 2 ** 20} MiB file, a project page of ${PAGE_FILES} links; verifyOnRead ${VERIFY_MODE}${VERIFY_MODE === 'on' ? ' (the default)' : ''}`,
  )
  const root = join(work, 'index')
  const filename = await makeIndex(root)
  const nginx = await startNginx({
    http: `  sendfile on;
  tcp_nopush on;
  keepalive_timeout 30;
  default_type application/octet-stream;`,
    server: `    root ${root};
    location /simple/ { default_type text/html; index index.html; }`,
    accessLog: false,
  })
  teardowns.teardown(() => nginx.stop())
  const pt = await startPullthrough({
    dir: work,
    storage: join(work, 'store'),
    verifyOnRead: VERIFY_ON_READ,
    ...(CPU_PROF_DIR === undefined
      ? {}
      : { nodeArgs: ['--cpu-prof', '--cpu-prof-dir', CPU_PROF_DIR] }),
    sections: `docker: { registries: [] }
pypi:
  indexes:
    - name: pypi
      default: true
      indexTTL: 1h
      upstreams: [{ url: "${nginx.url}/simple/" }]
      fileHosts: ["${nginx.url}"]
`,
  })
  teardowns.teardown(() => stop(pt.child))

  const directPage = `${nginx.url}/simple/${PROJECT}/`
  const page = `${pt.url}/simple/${PROJECT}/`
  const directFile = `${nginx.url}/files/${filename}`
  const file = await listedUrl(page, filename)
  const cold = await load(file, 1, 1, FILE_BYTES)
  const coldDirect = await load(directFile, 1, 1, FILE_BYTES)

  say('')
  row(['measurement', 'nginx', 'pullthrough', 'ratio', 'target', 'met'])
  row(['---', '---', '---', '---', '---', '---'])
  row([
    `cold GET of the ${FILE_BYTES / 2 ** 20} MiB file (s)`,
    coldDirect.seconds.toFixed(2),
    cold.seconds.toFixed(2),
    `${(cold.seconds / coldDirect.seconds).toFixed(2)}x`,
    '-',
    '-',
  ])
  for (const [concurrency, downloads] of FILE_RUNS) {
    const direct = await load(directFile, concurrency, downloads, FILE_BYTES)
    const through = await load(file, concurrency, downloads, FILE_BYTES)
    const ratio = through.mbps / direct.mbps
    row([
      `warm file GET c=${concurrency} (MB/s)`,
      direct.mbps.toFixed(0),
      through.mbps.toFixed(0),
      `${ratio.toFixed(2)}x`,
      FILE_TARGET === undefined ? '-' : `>= ${FILE_TARGET}x`,
      FILE_TARGET === undefined ? '-' : verdict(ratio >= FILE_TARGET),
    ])
  }
  // Node's own ceiling for the file: bare node:http sending it in pullthrough's reads, no hash.
  const bareFile = await startBareServer('file', join(root, 'files', filename))
  teardowns.teardown(() => stop(bareFile.child))
  for (const [concurrency, downloads] of FILE_RUNS) {
    const direct = await load(directFile, concurrency, downloads, FILE_BYTES)
    const bare = await load(`${bareFile.url}/file`, concurrency, downloads, FILE_BYTES)
    row([
      `warm file GET c=${concurrency}, bare node:http in 512 KiB reads, no hash (MB/s)`,
      direct.mbps.toFixed(0),
      bare.mbps.toFixed(0),
      `${(bare.mbps / direct.mbps).toFixed(2)}x`,
      '-',
      '-',
    ])
  }
  await stop(bareFile.child)
  const smallFile = await listedUrl(page, SMALL_FILENAME)
  await load(smallFile, 1, 1, SMALL_FILE_BYTES)
  const directSmall = await wrk(`${nginx.url}/files/${SMALL_FILENAME}`, 1)
  const throughSmall = await wrk(smallFile, 1)
  row([
    `warm GET of a ${SMALL_FILE_BYTES / 1024} KiB file, wrk 1 connection: p50 / p99 (ms)`,
    `${directSmall.p50Ms.toFixed(2)} / ${directSmall.p99Ms.toFixed(2)}`,
    `${throughSmall.p50Ms.toFixed(2)} / ${throughSmall.p99Ms.toFixed(2)}`,
    `${(throughSmall.p50Ms / directSmall.p50Ms).toFixed(2)}x`,
    '-',
    '-',
  ])
  const directWrk = await wrk(directPage)
  const throughWrk = await wrkCpu(page, pt.child.pid)
  const pageRatio = throughWrk.requestsPerSec / directWrk.requestsPerSec
  row([
    `warm project page, wrk ${PAGE_CONNECTIONS} connections (req/s)`,
    directWrk.requestsPerSec.toFixed(0),
    throughWrk.requestsPerSec.toFixed(0),
    `${pageRatio.toFixed(2)}x`,
    '>= 0.5x',
    verdict(pageRatio >= 0.5),
  ])
  row([
    'warm project page: p50 / p99 (ms)',
    `${directWrk.p50Ms.toFixed(2)} / ${directWrk.p99Ms.toFixed(2)}`,
    `${throughWrk.p50Ms.toFixed(2)} / ${throughWrk.p99Ms.toFixed(2)}`,
    '-',
    'p99 < 10 ms',
    verdict(throughWrk.p99Ms < 10),
  ])
  // The stack's ceiling: the page pullthrough rendered, answered from memory with no per-request work.
  const rendered = join(work, 'rendered.html')
  const pageRes = await fetch(page, { headers: { accept: 'text/html' } })
  await writeFile(rendered, Buffer.from(await pageRes.arrayBuffer()))
  const cpuPerPage = [`pullthrough ${throughWrk.cpuUs.toFixed(0)}`]
  for (const kind of ['fastify', 'http'] as const) {
    const bare = await startBareServer(kind, rendered)
    teardowns.teardown(() => stop(bare.child))
    const bareWrk = await wrkCpu(`${bare.url}/simple/${PROJECT}/`, bare.child.pid)
    cpuPerPage.push(
      `${kind === 'fastify' ? 'bare Fastify' : 'bare node:http'} ${bareWrk.cpuUs.toFixed(0)}`,
    )
    await stop(bare.child)
    const bareDirect = await wrk(directPage)
    row([
      `the same page from memory, ${kind === 'fastify' ? 'a bare Fastify route' : 'bare node:http'} (req/s; p50 / p99 ms)`,
      `${bareDirect.requestsPerSec.toFixed(0)}; ${bareDirect.p50Ms.toFixed(2)} / ${bareDirect.p99Ms.toFixed(2)}`,
      `${bareWrk.requestsPerSec.toFixed(0)}; ${bareWrk.p50Ms.toFixed(2)} / ${bareWrk.p99Ms.toFixed(2)}`,
      `${(bareWrk.requestsPerSec / bareDirect.requestsPerSec).toFixed(2)}x`,
      '-',
      '-',
    ])
  }
  say('')
  say(`server CPU per warm page request (µs): ${cpuPerPage.join(', ')}`)
} finally {
  await cleanUp(teardowns)
}
