/**
 * PyPI download benchmark. In one run, on loopback, side by side:
 *   - upstream A: the test fixtures' pypi.org-like index (test/helpers/pypi-upstream.ts,
 *     PEP 691 JSON pages, files on a separate files host) serving the real
 *     wheels and sdists test/helpers/pypi-packages.ts builds offline;
 *   - pullthrough: the real CLI (`pullthrough serve`, the built dist/cli.js) as its own process, its
 *     default index pointing at A, A's files host allowed.
 * Measures Debian's pip (`/usr/bin/python3 -m pip download`, hermetic
 * environment, no cache, a fresh --dest each time) cold (a new pullthrough
 * process with an empty store) and warm (the same pullthrough again) against
 * pip straight from A, for two workloads:
 *   - deps: `app` (which requires `lib`) and `Fancy_Name.Pkg`, resolved: one pip run;
 *   - every file: each version of each project pinned, `--no-deps`, wheels and
 *     sdists, one pip run per version rank (pip takes one version of a name per run).
 * Every download is checked file by file against the fixtures' sha256.
 *
 * Python and pip take about 0.3 s to start, more than the whole HTTP part of
 * these small downloads, so the bench also reads pip's own `--log` for the span
 * from its first look at the index to "Successfully downloaded", and times the
 * same pip runs with `--no-index --find-links` (no HTTP at all). A third run on
 * the warm process, and a cold run on a process first warmed up on content the
 * workload does not touch, tell a new process's first-use costs from per-request
 * ones. It counts the requests that reach A while pullthrough serves (A's own
 * request logs, pages and files apart, and pullthrough's /metrics). Then, to
 * show where the time goes per request: warm GETs with `wrk -t1 -c1` (one
 * keep-alive connection, as pip uses), and one GET of each page and each file
 * through a new pullthrough (cold), then of each file again (warm), against A.
 *
 * With `--upstream-rate` A is behind two Debian nginx reverse proxies
 * (bench/nginx.ts) with `limit_rate` per connection, one in front of the index
 * (rewriting the file URLs in its pages to the other with `sub_filter`) and one
 * in front of the files host; their addresses are the only upstream of pip and
 * of pullthrough. nginx sends the first second's worth of a response at once,
 * so only files larger than the rate are slowed, and it adds no latency per
 * request: for these small files it is a weak model of a WAN.
 *
 * Usage: npm run bench:pypi [-- --runs 3 --verify-on-read on|off --wrk-seconds 3
 *        --upstream-rate 10MB]
 */
import { createHash } from 'node:crypto'
import { mkdir, mkdtemp, readFile, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { pip, PYTHON, type PypiFile } from '../test/helpers/pypi-packages.ts'
import { startPypiUpstream, type PypiUpstream } from '../test/helpers/pypi-upstream.ts'
import { nginxVersion, startNginx, startRegistryProxy, type Nginx } from './nginx.ts'
import {
  cleanUp,
  cleanUpOnSignals,
  cpuSeconds,
  machineLine,
  median,
  oneOf,
  positiveInt,
  row,
  say,
  seconds,
  startPullthrough as startServe,
  stop,
  toolVersion,
  upstreamRate,
  upstreamRequests,
  verdict,
  type Pullthrough,
} from './shared.ts'
import { Teardowns } from './teardowns.ts'
import { runWrk, type WrkResult } from './wrk.ts'

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '3' },
    // storage.verifyOnRead of pullthrough; the built-in default is on.
    'verify-on-read': { type: 'string', default: 'on' },
    // Duration of each wrk latency run.
    'wrk-seconds': { type: 'string', default: '3' },
    // Bytes per second per connection of A (e.g. 10MB), to model a WAN link;
    // unset, A itself is the upstream, on loopback.
    'upstream-rate': { type: 'string' },
  },
})

const RUNS = positiveInt('runs', values.runs)
const VERIFY_ON_READ = oneOf('verify-on-read', values['verify-on-read'], ['on', 'off']) === 'on'
const WRK_SECONDS = positiveInt('wrk-seconds', values['wrk-seconds'])
const UPSTREAM_RATE = upstreamRate(values['upstream-rate'])
/** Issue #13: a cold pip download at most 1.3x the upstream index, 1.05x behind a WAN-rate one. */
const COLD_TARGET = UPSTREAM_RATE === undefined ? 1.3 : 1.05

/** Long enough that every warm request of the run is within it. */
const INDEX_TTL = '1h'
/** What pip 23 sends for a project page (pip/_internal/index/collector.py). */
const PIP_ACCEPT =
  'application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01'
const HTTP_TIMEOUT_MS = 10_000
/** GETs of the largest file through the rate-limited proxy when checking it. */
const PROXY_CHECK_GETS = 3
/** Bound on one pip run (a few files; through a slow modelled link too). */
const PIP_TIMEOUT_MS = 300_000

const teardowns = new Teardowns()
const t = teardowns.asTest()
const work = await mkdtemp(join(tmpdir(), 'pt-bench-pypi-'))
teardowns.teardown(() => rm(work, { recursive: true, force: true }))
await mkdir(join(work, 'dest'))
cleanUpOnSignals(teardowns)

/** One pip run: its arguments after `download` and the files it must leave in --dest. */
interface Step {
  readonly args: readonly string[]
  /**
   * Not checked for the --no-index floor: --find-links has no yank data, so pip
   * may settle on another lib there.
   */
  readonly expected: readonly PypiFile[]
}

interface Workload {
  readonly name: string
  readonly steps: readonly Step[]
  /**
   * A file of a project the workload does not touch: fetched (page, then file)
   * through a new pullthrough before an extra cold run, so that run meets a
   * process whose code paths and upstream connections are warm but whose cache
   * holds nothing the workload asks for.
   */
  readonly warmUp?: PypiFile
}

/** Where pip gets its files: an index URL, or none (`--no-index --find-links`). */
type Source = { readonly index: string } | { readonly findLinks: string }

let destinations = 0

interface Timed {
  /** Wall seconds of the pip processes, start-up to exit. */
  readonly seconds: number
  /** Seconds in pip's own log from its first look at the index to "Successfully downloaded". */
  readonly span: number
}

/** Runs the workload's pip steps one after the other; resolves to their total times. */
async function download(workload: Workload, source: Source, check: boolean): Promise<Timed> {
  let seconds = 0
  let span = 0
  for (const step of workload.steps) {
    const dest = join(work, 'dest', String(destinations++))
    const log = `${dest}.log`
    const from =
      'index' in source
        ? ['--index-url', source.index]
        : ['--no-index', '--find-links', source.findLinks]
    const run = await pip(
      t,
      [
        'download',
        '-q',
        '--progress-bar',
        'off',
        '--no-cache-dir',
        '--log',
        log,
        '--dest',
        dest,
        ...from,
        ...step.args,
      ],
      { timeoutMs: PIP_TIMEOUT_MS },
    )
    if (run.code !== 0)
      throw new Error(
        `pip download ${step.args.join(' ')} exited ${String(run.code)}:\n${run.stderr}`,
      )
    seconds += run.durationMs / 1000
    span += logSpan(await readFile(log, 'utf8'))
    if (check) await checkDest(dest, step.expected)
    await rm(dest, { recursive: true, force: true })
    await rm(log, { force: true })
  }
  return { seconds, span }
}

/**
 * Seconds from pip's "Looking in indexes" (or "Looking in links") line to its
 * "Successfully downloaded" line: what one pip run spends on finding, fetching and
 * saving the files, without Python's and pip's start-up and exit. pip's --log stamps
 * every line to the millisecond (`2026-11-25T08:51:56,454`).
 */
function logSpan(log: string): number {
  const stamp = (pattern: RegExp): number => {
    const line = log.split('\n').find((l) => pattern.test(l)) ?? ''
    const match = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d),(\d{3})/.exec(line)
    if (!match) throw new Error(`no ${String(pattern)} line in pip's log`)
    return Date.parse(`${match[1] ?? ''}Z`) + Number(match[2])
  }
  return (stamp(/Successfully downloaded/) - stamp(/Looking in (indexes|links)/)) / 1000
}

/** Fails unless `dest` holds exactly the expected files, each with its fixture sha256. */
async function checkDest(dest: string, expected: readonly PypiFile[]): Promise<void> {
  const names = (await readdir(dest)).sort()
  const wanted = expected.map((f) => f.filename).sort()
  if (names.join(' ') !== wanted.join(' '))
    throw new Error(`pip left ${names.join(', ')} in --dest; expected ${wanted.join(', ')}`)
  for (const file of expected) {
    const sha256 = createHash('sha256')
      .update(await readFile(join(dest, file.filename)))
      .digest('hex')
    if (sha256 !== file.sha256)
      throw new Error(`${file.filename}: sha256 ${sha256}, not ${file.sha256}`)
  }
}

/** The workloads over the fixture set: deps resolved, and every file pinned. */
function workloads(upstream: PypiUpstream): Workload[] {
  const { packages } = upstream
  const latestWheel = (project: string, version: string) => {
    const file = packages
      .project(project)
      .files.find((f) => f.version === version && f.kind === 'wheel')
    if (!file) throw new Error(`no ${project} ${version} wheel in the fixtures`)
    return file
  }
  const deps: Workload = {
    name: 'app + Fancy_Name.Pkg',
    steps: [
      {
        args: ['app', 'Fancy_Name.Pkg'],
        // lib 2.0 is yanked and lib 3.0 needs Python >= 3.99: pip settles on 1.1.
        expected: [
          latestWheel('app', '1.0'),
          latestWheel('lib', '1.1'),
          latestWheel('Fancy_Name.Pkg', '0.1'),
        ],
      },
    ],
    // Debian's setuptools wheel: no project of the workload.
    ...(packages.systemWheel ? { warmUp: packages.systemWheel } : {}),
  }
  // One pip run per kind and version rank: the n-th version of every project that has one.
  const steps: Step[] = []
  for (const kind of ['wheel', 'sdist'] as const) {
    const byProject = packages.projects.map((p) => p.files.filter((f) => f.kind === kind))
    const ranks = Math.max(...byProject.map((files) => files.length))
    for (let rank = 0; rank < ranks; rank++) {
      const files = byProject.flatMap((list) => list.slice(rank, rank + 1))
      if (files.length === 0) continue
      steps.push({
        args: [
          '--no-deps',
          '--ignore-requires-python',
          ...(kind === 'wheel'
            ? ['--only-binary', ':all:']
            : // Preparing an sdist's metadata runs its build backend: Debian's setuptools,
              // not one pip would download into an isolated build environment.
              ['--no-binary', ':all:', '--no-build-isolation']),
          ...files.map((f) => `${f.project}==${f.version}`),
        ],
        expected: files,
      })
    }
  }
  return [deps, { name: 'every file', steps }]
}

/** Requests A has received so far: its index (pages) and its files host. */
function upstreamCounts(upstream: PypiUpstream): { pages: number; files: number } {
  return { pages: upstream.count(), files: upstream.files.count() }
}

interface UpstreamUrls {
  /** The index URL clients and pullthrough are given. */
  readonly index: string
  /** The origin file links point to. */
  readonly files: string
  readonly line: string
}

/**
 * A rate-limited reverse proxy in front of A's files host, and one in front of
 * its index that rewrites the files host's origin in pages to the files proxy.
 * Checks that a page through the proxy links the files proxy and that a file
 * comes through it whole; resolves to the proxies' URLs.
 */
async function startProxies(upstream: PypiUpstream, rate: number): Promise<UpstreamUrls> {
  const files: Nginx = await startRegistryProxy(upstream.files.origin, rate)
  teardowns.teardown(() => files.stop())
  const index = await startNginx({
    accessLog: false,
    http: `  upstream index {
    server ${new URL(upstream.origin).host};
    keepalive 32;
    keepalive_requests 1000000;
  }
  keepalive_requests 1000000;`,
    server: `    location / {
      proxy_pass http://index;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $http_host;
      # sub_filter needs the body uncompressed; A never compresses anyway.
      proxy_set_header Accept-Encoding "";
      proxy_redirect off;
      sub_filter '${upstream.files.origin}' '${files.url}';
      sub_filter_once off;
      sub_filter_types *;
      # Keeps A's ETag (made weak) for revalidation.
      sub_filter_last_modified on;
      limit_rate ${Math.round(rate)};
    }`,
  })
  teardowns.teardown(() => index.stop())

  const page = await fetch(`${index.url}/simple/setuptools/`, {
    headers: { accept: PIP_ACCEPT },
    signal: AbortSignal.timeout(HTTP_TIMEOUT_MS),
  })
  const json = (await page.json()) as { files?: { url: string; hashes: { sha256: string } }[] }
  const listed = json.files ?? []
  if (
    page.status !== 200 ||
    listed.length === 0 ||
    !listed.every((f) => f.url.startsWith(`${files.url}/`))
  )
    throw new Error(
      `a page through the index proxy does not link the files proxy: ${JSON.stringify(json)}`,
    )
  const wheel = listed[0]
  if (!wheel) throw new Error('no file')
  // nginx lets each response have rate x (whole seconds since it started + 1) bytes: one
  // second's worth goes out at once, so a file smaller than the rate is not slowed at all
  // (measured: 1.26 MB at 2 MB/s took 0.035 s, at 0.5 MB/s 2.0 s). The line says so.
  const started = process.hrtime.bigint()
  let received = 0
  for (let i = 0; i < PROXY_CHECK_GETS; i++) {
    const res = await fetch(wheel.url, { signal: AbortSignal.timeout(PIP_TIMEOUT_MS) })
    const body = Buffer.from(await res.arrayBuffer())
    if (createHash('sha256').update(body).digest('hex') !== wheel.hashes.sha256)
      throw new Error(`${wheel.url} through the files proxy: wrong bytes (${res.status})`)
    received += body.length
  }
  const taken = Number(process.hrtime.bigint() - started) / 1e9
  return {
    index: `${index.url}/simple/`,
    files: files.url,
    line: `upstream: A behind two nginx ${nginxVersion()} reverse proxies (the index's, rewriting file URLs in pages with sub_filter, and the files host's), limit_rate ${(rate / 1e6).toFixed(1)} MB/s per connection (${PROXY_CHECK_GETS} GETs in a row of a ${(received / PROXY_CHECK_GETS / 1e6).toFixed(2)} MB wheel through it: ${taken.toFixed(2)} s, ${(received / 1e6 / taken).toFixed(1)} MB/s; nginx sends one second's worth of a response at once, so files under ${(rate / 1e6).toFixed(1)} MB are not slowed); they are the upstream of pip direct and of pullthrough`,
  }
}

/** Starts pullthrough with an empty store, its default index on `urls`. */
function startPullthrough(urls: UpstreamUrls, storage: string): Promise<Pullthrough> {
  return startServe({
    dir: work,
    storage,
    verifyOnRead: VERIFY_ON_READ,
    sections: `docker: { registries: [] }
pypi:
  indexes:
    - name: pypi
      default: true
      indexTTL: ${INDEX_TTL}
      upstreams: [{ url: "${urls.index}" }]
      fileHosts: ["${urls.files}"]
`,
  })
}

/** The URL of `file` as the page at `index` lists it (pip's Accept, JSON). */
async function listedUrl(index: string, file: PypiFile): Promise<string> {
  const res = await fetch(`${index}${encodeURIComponent(file.project)}/`, {
    headers: { accept: PIP_ACCEPT },
    signal: AbortSignal.timeout(HTTP_TIMEOUT_MS),
  })
  const json = (await res.json()) as { files?: { filename: string; url: string }[] }
  const url = json.files?.find((f) => f.filename === file.filename)?.url
  if (url === undefined) throw new Error(`${index} does not list ${file.filename}`)
  return new URL(url, res.url).href
}

/** One GET, body read whole; resolves to its milliseconds. */
async function timedGet(url: string, accept?: string): Promise<number> {
  const started = process.hrtime.bigint()
  const res = await fetch(url, {
    headers: accept === undefined ? {} : { accept },
    signal: AbortSignal.timeout(PIP_TIMEOUT_MS),
  })
  await res.arrayBuffer()
  if (res.status !== 200) throw new Error(`GET ${url}: ${res.status}`)
  return Number(process.hrtime.bigint() - started) / 1e6
}

async function wrk(url: string, accept?: string): Promise<WrkResult> {
  const result = await runWrk({
    url,
    threads: 1,
    connections: 1,
    durationS: WRK_SECONDS,
    headers: accept === undefined ? {} : { Accept: accept },
  })
  if (result.non2xx > 0 || result.socketErrors > 0)
    throw new Error(
      `wrk against ${url}: ${result.non2xx} non-2xx, ${result.socketErrors} socket errors`,
    )
  return result
}

interface Measured {
  readonly seconds: number[]
  /** pip's own log, see logSpan, per run. */
  readonly span: number[]
  /** CPU seconds of pullthrough per run. */
  readonly cpu: number[]
  /** Requests that reached A (pages, files), summed over the runs. */
  pages: number
  files: number
  /** pullthrough's own count of upstream requests (/metrics), summed over the runs. */
  metrics: number
}

const measured = (): Measured => ({
  seconds: [],
  span: [],
  cpu: [],
  pages: 0,
  files: 0,
  metrics: 0,
})

function record(into: Measured, timed: Timed): void {
  into.seconds.push(timed.seconds)
  into.span.push(timed.span)
}

/** Runs `workload` through `pt` once, adding time, CPU and upstream requests to `into`. */
async function through(
  pt: Pullthrough,
  upstream: PypiUpstream,
  workload: Workload,
  into: Measured,
): Promise<void> {
  const before = upstreamCounts(upstream)
  const metricsBefore = await upstreamRequests(pt)
  const cpuBefore = await cpuSeconds(pt.child.pid)
  record(into, await download(workload, { index: `${pt.url}/simple/` }, true))
  into.cpu.push((await cpuSeconds(pt.child.pid)) - cpuBefore)
  const after = upstreamCounts(upstream)
  into.pages += after.pages - before.pages
  into.files += after.files - before.files
  into.metrics += (await upstreamRequests(pt)) - metricsBefore
}

const ms = (n: number) => n.toFixed(2)
/** `median (run 1, run 2, ...)` of seconds, in whole milliseconds. */
const millis = (values: readonly number[]) =>
  `${(median(values) * 1000).toFixed(0)} (${values.map((v) => (v * 1000).toFixed(0)).join(', ')})`
const ratio = (a: number, b: number) => `${(a / b).toFixed(2)}x`

try {
  const upstream = await startPypiUpstream(t)
  const { packages } = upstream
  const loads = workloads(upstream)
  let urls: UpstreamUrls = {
    index: upstream.index,
    files: upstream.files.origin,
    line: 'upstream: A itself (node:http in the bench process) on loopback, unthrottled',
  }
  if (UPSTREAM_RATE !== undefined) urls = await startProxies(upstream, UPSTREAM_RATE)

  const allFiles = packages.projects.flatMap((p) => p.files)
  const bytes = allFiles.reduce((sum, f) => sum + f.size, 0)
  say(`# pullthrough PyPI download benchmark, ${new Date().toISOString()}`)
  say(machineLine())
  say(
    `tools: ${PYTHON} ${toolVersion(PYTHON, ['--version'])}, pip ${toolVersion(PYTHON, ['-m', 'pip', '--version'])}, wrk ${toolVersion('wrk', ['--version'])}`,
  )
  say(
    `packages: the test fixtures, ${packages.projects.length} projects, ${allFiles.length} files, ${(bytes / 1e6).toFixed(2)} MB (${packages.projects.map((p) => `${p.name} ${p.files.length}`).join(', ')}); pullthrough verifyOnRead ${VERIFY_ON_READ ? 'on' : 'off'}, log level warn, indexTTL ${INDEX_TTL}`,
  )
  for (const workload of loads)
    say(
      `workload "${workload.name}": ${workload.steps.length} pip run(s): ${workload.steps.map((s) => `pip download ${s.args.join(' ')}`).join('; ')}`,
    )
  say(
    `pip: ${PYTHON} -m pip download -q --progress-bar off --no-cache-dir --log <file> --dest <fresh dir> --index-url <url>/simple/ ..., clean environment; ${RUNS} runs, median (each run), seconds of all the workload's pip runs; a cold run starts a new pullthrough process with an empty store, the warm run follows it on the same process`,
  )
  say(urls.line)

  const results = loads.map((workload) => ({
    workload,
    floor: measured(),
    direct: measured(),
    cold: measured(),
    warm: measured(),
    warmAgain: measured(),
    prewarmed: measured(),
  }))
  let store = 0
  for (let run = 0; run < RUNS; run++) {
    for (const r of results) {
      record(r.floor, await download(r.workload, { findLinks: packages.dir }, false))
      const before = upstreamCounts(upstream)
      record(r.direct, await download(r.workload, { index: urls.index }, true))
      const after = upstreamCounts(upstream)
      r.direct.pages += after.pages - before.pages
      r.direct.files += after.files - before.files
      const pt = await startPullthrough(urls, join(work, `store-${store++}`))
      await through(pt, upstream, r.workload, r.cold)
      await through(pt, upstream, r.workload, r.warm)
      await through(pt, upstream, r.workload, r.warmAgain)
      await stop(pt.child)
      const warmUp = r.workload.warmUp
      if (warmUp) {
        const other = await startPullthrough(urls, join(work, `store-${store++}`))
        await timedGet(`${other.url}/healthz`)
        await timedGet(await listedUrl(`${other.url}/simple/`, warmUp))
        await through(other, upstream, r.workload, r.prewarmed)
        await stop(other.child)
      }
    }
  }

  // Where the time goes, per request: warm GETs on one keep-alive connection with
  // wrk, after pip filled a pullthrough with everything; then one GET of each page
  // and each file, in order, through a new pullthrough (cold) and from A.
  const pt = await startPullthrough(urls, join(work, `store-${store++}`))
  const everything = loads.at(-1)
  if (!everything) throw new Error('no workload')
  await download(everything, { index: `${pt.url}/simple/` }, true)
  const ptIndex = `${pt.url}/simple/`
  const small = packages.file(
    packages.project('app').files.find((f) => f.kind === 'wheel')?.filename ?? '',
  )
  const large = packages.systemWheel ?? small
  const targets = [
    {
      label: `page /simple/lib/ (JSON, ${packages.project('lib').files.length} files)`,
      direct: `${urls.index}lib/`,
      pt: `${ptIndex}lib/`,
      accept: PIP_ACCEPT,
    },
    {
      label: `file ${small.filename} (${small.size} B)`,
      direct: await listedUrl(urls.index, small),
      pt: await listedUrl(ptIndex, small),
    },
    {
      label: `file ${large.filename} (${(large.size / 1e6).toFixed(2)} MB)`,
      direct: await listedUrl(urls.index, large),
      pt: await listedUrl(ptIndex, large),
    },
  ]
  const healthz = await wrk(`${pt.url}/healthz`)
  const latency: { label: string; direct: WrkResult; pt: WrkResult }[] = []
  let wrkUpstream = 0
  for (const target of targets) {
    const direct = await wrk(target.direct, target.accept)
    const before = upstreamCounts(upstream)
    const viaPt = await wrk(target.pt, target.accept)
    const after = upstreamCounts(upstream)
    wrkUpstream += after.pages - before.pages + after.files - before.files
    latency.push({ label: target.label, direct, pt: viaPt })
  }
  await stop(pt.child)

  const fresh = await startPullthrough(urls, join(work, `store-${store++}`))
  const freshIndex = `${fresh.url}/simple/`
  const single = {
    directPages: [] as number[],
    ptPages: [] as number[],
    directFiles: [] as number[],
    ptFiles: [] as number[],
    directFilesAgain: [] as number[],
    ptFilesAgain: [] as number[],
  }
  for (const project of packages.projects) {
    single.directPages.push(await timedGet(`${urls.index}${project.normalized}/`, PIP_ACCEPT))
    single.ptPages.push(await timedGet(`${freshIndex}${project.normalized}/`, PIP_ACCEPT))
  }
  /** One GET of every file from each side, by the URLs the pages list. */
  const getFiles = async (direct: number[], pt: number[]) => {
    for (const file of allFiles) {
      direct.push(await timedGet(await listedUrl(urls.index, file)))
      pt.push(await timedGet(await listedUrl(freshIndex, file)))
    }
  }
  // The pages are cached by now, the files are not.
  await getFiles(single.directFiles, single.ptFiles)
  // The same files again from the same process: now warm (verifyOnRead hashes them on reading).
  await getFiles(single.directFilesAgain, single.ptFilesAgain)
  await stop(fresh.child)

  say('')
  row(['measurement', 'upstream A (direct)', 'pullthrough', 'ratio', 'target', 'met'])
  row(['---', '---', '---', '---', '---', '---'])
  for (const { workload, floor, direct, cold, warm, warmAgain, prewarmed } of results) {
    const name = workload.name
    const dm = median(direct.seconds)
    const cm = median(cold.seconds)
    const wm = median(warm.seconds)
    const spans = median(direct.span)
    row([
      `${name}: cold pip download, s: median (runs)`,
      seconds(direct.seconds),
      seconds(cold.seconds),
      ratio(cm, dm),
      `<= ${COLD_TARGET}x`,
      verdict(cm / dm <= COLD_TARGET),
    ])
    row([
      `${name}: warm pip download, s: median (runs)`,
      seconds(direct.seconds),
      seconds(warm.seconds),
      ratio(wm, dm),
      '<= 1.0x',
      verdict(wm / dm <= 1.0),
    ])
    row([
      `${name}: warm pip download again (third run on the same process), s: median (runs)`,
      seconds(direct.seconds),
      seconds(warmAgain.seconds),
      ratio(median(warmAgain.seconds), dm),
      '-',
      '-',
    ])
    if (workload.warmUp)
      row([
        `${name}: cold pip download, pullthrough process warmed up first on ${workload.warmUp.filename} (page, file), s: median (runs)`,
        seconds(direct.seconds),
        seconds(prewarmed.seconds),
        ratio(median(prewarmed.seconds), dm),
        '-',
        '-',
      ])
    row([
      `${name}: pip with --no-index --find-links (no HTTP at all), s: median (runs)`,
      seconds(floor.seconds),
      '-',
      '-',
      '-',
      '-',
    ])
    const phases: [string, Measured][] = [
      ['cold', cold],
      ['warm', warm],
      ['warm again', warmAgain],
    ]
    if (workload.warmUp) phases.push(['cold on a warmed-up process', prewarmed])
    for (const [phase, m] of phases)
      row([
        `${name}: ${phase}, pip's log from "Looking in indexes" to "Successfully downloaded", ms: median (runs)`,
        millis(direct.span),
        millis(m.span),
        ratio(median(m.span), spans),
        '-',
        '-',
      ])
    row([
      `${name}: the same span with --no-index --find-links (no HTTP), ms: median (runs)`,
      millis(floor.span),
      '-',
      '-',
      '-',
      '-',
    ])
    row([
      `${name}: requests reaching A per run, pages / files (cold for pullthrough)`,
      `${direct.pages / RUNS} / ${direct.files / RUNS}`,
      `${cold.pages / RUNS} / ${cold.files / RUNS}`,
      '-',
      '-',
      '-',
    ])
    row([
      `${name}: requests reaching A during the ${RUNS} warm runs, pages / files (pullthrough's /metrics)`,
      '-',
      `${warm.pages} / ${warm.files} (${warm.metrics})`,
      '-',
      '0',
      verdict(warm.pages === 0 && warm.files === 0 && warm.metrics === 0),
    ])
    row([
      `${name}: CPU s of pullthrough per run, cold / warm (medians)`,
      '-',
      `${median(cold.cpu).toFixed(2)} / ${median(warm.cpu).toFixed(2)}`,
      '-',
      '-',
      '-',
    ])
  }
  row([
    `warm GET /healthz (no cache work), wrk -t1 -c1 ${WRK_SECONDS} s: p50 / p99 ms`,
    '-',
    `${ms(healthz.p50Ms)} / ${ms(healthz.p99Ms)}`,
    '-',
    '-',
    '-',
  ])
  for (const l of latency) {
    row([
      `warm GET ${l.label}, wrk -t1 -c1 ${WRK_SECONDS} s: p50 / p99 ms`,
      `${ms(l.direct.p50Ms)} / ${ms(l.direct.p99Ms)}`,
      `${ms(l.pt.p50Ms)} / ${ms(l.pt.p99Ms)}`,
      ratio(l.pt.p50Ms, l.direct.p50Ms),
      '-',
      '-',
    ])
  }
  row([
    'requests reaching A during the warm wrk runs through pullthrough',
    '-',
    wrkUpstream,
    '-',
    '0',
    verdict(wrkUpstream === 0),
  ])
  const first = (list: readonly number[]) => list[0] ?? NaN
  const rest = (list: readonly number[]) => median(list.slice(1))
  const singles = [
    ['new pullthrough (cold)', 'page', single.directPages, single.ptPages],
    ['new pullthrough (cold)', 'file', single.directFiles, single.ptFiles],
    ['then the same files again (warm)', 'file', single.directFilesAgain, single.ptFilesAgain],
  ] as const
  for (const [when, kind, d, p] of singles) {
    row([
      `one GET, ${when}: the first ${kind}, ms`,
      ms(first(d)),
      ms(first(p)),
      ratio(first(p), first(d)),
      '-',
      '-',
    ])
    row([
      `one GET, ${when}: each next ${kind} (${d.length - 1}), median ms`,
      ms(rest(d)),
      ms(rest(p)),
      ratio(rest(p), rest(d)),
      '-',
      '-',
    ])
  }
} finally {
  await cleanUp(teardowns)
}
