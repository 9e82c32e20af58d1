/**
 * Docker pull benchmark. In one run, on loopback, side by side:
 *   - the upstream: Debian's docker-registry (CNCF Distribution) holding a
 *     multi-layer image of random, incompressible data;
 *   - pullthrough: the real CLI (`pullthrough serve`, the built dist/cli.js) as its own process, its
 *     docker.io registry pointing at that upstream.
 * Measures `skopeo copy` of the image cold (fresh pullthrough store) and warm
 * through pullthrough against copying it straight from the upstream, then warm
 * tag-manifest GETs with wrk against both. A cold copy is measured twice: on a
 * process that has just started (its JIT compiler still warming up), and on a
 * running one, which has served a pull of another image first, as a cache that
 * runs for weeks has. Prints medians and ratios as a
 * markdown table. Every copy goes to a fresh `oci:` (or `dir:`) destination so
 * skopeo skips nothing. Bounded: fixed run counts, fixed wrk duration, timeouts on
 * every wait.
 *
 * With `--upstream-rate` the upstream is across a modelled WAN link: Debian's
 * nginx as a reverse proxy in front of the registry (bench/nginx.ts) sends each
 * response at no more than that rate per connection, and its address is the
 * upstream of everything: the direct copies, pullthrough's docker.io registry
 * and the direct side of the manifest GETs. pullthrough itself stays local.
 *
 * pullthrough runs as a child process, not in this one: skopeo, wrk and the
 * registry are separate processes too, so each server has its own event loop
 * and nothing the benchmark does competes with pullthrough's.
 *
 * Usage: npm run bench:docker [-- --layers 5 --layer-size 30MiB --runs 3 --wrk-seconds 10
 *        --connections 32 --threads 2 --verify-on-read on|off|changed --dest oci|dir
 *        --upstream-rate 100MB --cpu-prof-dir DIR]
 */
import { execFileSync } from 'node:child_process'
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises'
import { availableParallelism, tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { parseSize } from '../src/config/units.ts'
import { buildImage, skopeo, type BuiltLayer } from '../test/helpers/images.ts'
import { startRegistry } from '../test/helpers/registry.ts'
import { registryFlags } from '../test/helpers/skopeo.ts'
import { nginxVersion, startRegistryProxy } from './nginx.ts'
import {
  cleanUp as cleanUpAll,
  cleanUpOnSignals,
  cpuSeconds,
  DOCKER_ACCEPT,
  machineBusySeconds,
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
  verifyOnReadFlag,
  verdict,
  type Pullthrough,
} from './shared.ts'
import { Teardowns } from './teardowns.ts'
import { runWrk, type WrkResult } from './wrk.ts'

const { values } = parseArgs({
  options: {
    layers: { type: 'string', default: '5' },
    'layer-size': { type: 'string', default: '30MiB' },
    runs: { type: 'string', default: '3' },
    'wrk-seconds': { type: 'string', default: '10' },
    connections: { type: 'string', default: '32' },
    threads: { type: 'string', default: '2' },
    // storage.verifyOnRead of pullthrough (on, off, changed); the built-in default is on.
    'verify-on-read': { type: 'string', default: 'on' },
    // skopeo's destination transport: oci copies the layers in parallel (as docker and
    // containerd pull), dir one after the other.
    dest: { type: 'string', default: 'oci' },
    // Bytes per second per connection of the upstream (e.g. 100MB), to model a WAN link;
    // unset, the registry is the upstream itself, on loopback.
    'upstream-rate': { type: 'string' },
    // Each pullthrough process writes a V8 CPU profile of its whole life here.
    'cpu-prof-dir': { type: 'string' },
  },
})

const LAYERS = positiveInt('layers', values.layers)
const LAYER_BYTES = parseSize(values['layer-size']) ?? 30 * 2 ** 20
const RUNS = positiveInt('runs', values.runs)
const WRK_SECONDS = positiveInt('wrk-seconds', values['wrk-seconds'])
const CONNECTIONS = positiveInt('connections', values.connections)
const THREADS = positiveInt('threads', values.threads)
const UPSTREAM_RATE = upstreamRate(values['upstream-rate'])
/** Issue #13's targets: cold copies against the direct ones, and tag manifests within tagTTL. */
const WAN_COLD_TARGET = 1.05
const LOOPBACK_COLD_TARGET = 1.3
const MANIFEST_RPS_TARGET = 6
const MANIFEST_P99_TARGET_MS = 15

const { mode: VERIFY_MODE, value: VERIFY_ON_READ } = verifyOnReadFlag(values['verify-on-read'])
const DEST = oneOf('dest', values.dest, ['oci', 'dir'])
/** The file of a copy that names the manifest: the same bytes from both sides when they agree. */
const DEST_INDEX = DEST === 'dir' ? 'manifest.json' : 'index.json'

const REPOSITORY = 'library/bench'
const TAG = 'latest'
/** Pulled (unmeasured) before the cold copy on a running process: other content, same code paths. */
const WARMUP_REPOSITORY = 'library/warmup'
const WARMUP_LAYER_BYTES = 8 * 2 ** 20
const WARMUP_LAYERS = 3
/** Long enough that every warm request of the run is within it. */
const TAG_TTL = '1h'
const HTTP_TIMEOUT_MS = 10_000
/** Bound on one whole layer GET through the rate-limited upstream. */
const LAYER_TIMEOUT_MS = 120_000

const teardowns = new Teardowns()
const t = teardowns.asTest()
const work = await mkdtemp(join(tmpdir(), 'pt-bench-docker-'))
teardowns.teardown(() => rm(work, { recursive: true, force: true }))
await mkdir(join(work, 'dest'))
cleanUpOnSignals(teardowns)
const cleanUp = () => cleanUpAll(teardowns)

/** Starts pullthrough with a fresh store in `storage`, its docker.io registry on `upstream`. */
function startPullthrough(upstream: string, storage: string): Promise<Pullthrough> {
  return startServe({
    dir: work,
    storage,
    verifyOnRead: VERIFY_ON_READ,
    ...(values['cpu-prof-dir'] === undefined
      ? {}
      : { nodeArgs: ['--cpu-prof', '--cpu-prof-dir', values['cpu-prof-dir']] }),
    sections: `docker:
  registries:
    - { name: docker.io, default: true, tagTTL: ${TAG_TTL}, upstreams: [{ url: "${upstream}" }] }
pypi: { indexes: [] }
`,
  })
}

/** Every manifest a copy produced: one entry when both sides served the same bytes. */
const copiedManifests = new Set<string>()

interface Copy {
  readonly seconds: number
  /** CPU seconds the serving process used meanwhile. */
  readonly serverCpu: number
  /** Cores the whole machine kept busy meanwhile (skopeo, servers, everything). */
  readonly machineCores: number
}

/**
 * Copies the image (or `repository`) from `host` into a fresh destination; `server`
 * is the PID of what serves it.
 */
async function copy(
  host: string,
  label: string,
  server: number | undefined,
  repository = REPOSITORY,
): Promise<Copy> {
  const dest = join(work, 'dest', label)
  const flags = await registryFlags(t, 'src', undefined)
  const cpuBefore = await cpuSeconds(server)
  const machineBefore = await machineBusySeconds()
  const started = process.hrtime.bigint()
  await skopeo(t, [
    'copy',
    '--quiet',
    ...flags,
    `docker://${host}/${repository}:${TAG}`,
    DEST === 'oci' ? `oci:${dest}:${TAG}` : `dir:${dest}`,
  ])
  const seconds = Number(process.hrtime.bigint() - started) / 1e9
  const serverCpu = (await cpuSeconds(server)) - cpuBefore
  const machineCores = ((await machineBusySeconds()) - machineBefore) / seconds
  if (repository === REPOSITORY)
    copiedManifests.add((await readFile(join(dest, DEST_INDEX))).toString('base64'))
  await rm(dest, { recursive: true, force: true })
  return { seconds, serverCpu, machineCores }
}

/** The PID of the docker-registry the registry helper started as a child of this process. */
function registryPid(): number | undefined {
  try {
    const out = execFileSync('pgrep', ['-x', '-P', String(process.pid), 'docker-registry'], {
      encoding: 'utf8',
    })
    const pid = Number(out.trim().split('\n')[0])
    return Number.isInteger(pid) && pid > 0 ? pid : undefined
  } catch {
    return undefined
  }
}

async function manifestGet(url: string): Promise<void> {
  const res = await fetch(`${url}/v2/${REPOSITORY}/manifests/${TAG}`, {
    headers: { accept: DOCKER_ACCEPT },
    signal: AbortSignal.timeout(HTTP_TIMEOUT_MS),
  })
  await res.arrayBuffer()
  if (res.status !== 200) throw new Error(`manifest GET ${url} answered ${res.status}`)
}

async function wrk(url: string): Promise<WrkResult> {
  const result = await runWrk({
    url: `${url}/v2/${REPOSITORY}/manifests/${TAG}`,
    threads: THREADS,
    connections: CONNECTIONS,
    durationS: WRK_SECONDS,
    headers: { Accept: DOCKER_ACCEPT },
  })
  if (result.non2xx > 0 || result.socketErrors > 0)
    throw new Error(
      `wrk against ${url}: ${result.non2xx} non-2xx responses, ${result.socketErrors} socket errors`,
    )
  return result
}

interface Upstream {
  readonly url: string
  readonly host: string
}

/**
 * Fails unless the proxy at `proxy` answers as the registry at `registry` does
 * where pulls need it: HEAD of the tag (status, Docker-Content-Digest,
 * Content-Length), a Range GET of a layer (206, Content-Range, the same bytes),
 * and an upload session's Location (naming the proxy). Resolves to the seconds
 * a whole GET of the layer took through the proxy.
 */
async function checkProxy(proxy: string, registry: string, layer: BuiltLayer): Promise<number> {
  const signal = () => AbortSignal.timeout(HTTP_TIMEOUT_MS)
  const head = async (base: string) => {
    const res = await fetch(`${base}/v2/${REPOSITORY}/manifests/${TAG}`, {
      method: 'HEAD',
      headers: { accept: DOCKER_ACCEPT },
      signal: signal(),
    })
    const digest = res.headers.get('docker-content-digest') ?? ''
    return `${res.status} ${digest} ${res.headers.get('content-length') ?? ''}`
  }
  const [viaProxy, direct] = [await head(proxy), await head(registry)]
  if (viaProxy !== direct || !direct.startsWith('200 sha256:'))
    throw new Error(`HEAD of the tag: proxy answered "${viaProxy}", registry "${direct}"`)

  const blob = `/v2/${REPOSITORY}/blobs/${layer.digest}`
  const range = async (base: string) => {
    const res = await fetch(`${base}${blob}`, {
      headers: { range: 'bytes=100-199' },
      signal: signal(),
    })
    const body = Buffer.from(await res.arrayBuffer()).toString('base64')
    return `${res.status} ${res.headers.get('content-range') ?? ''} ${body}`
  }
  const [rangeProxy, rangeDirect] = [await range(proxy), await range(registry)]
  if (rangeProxy !== rangeDirect || !rangeDirect.startsWith(`206 bytes 100-199/${layer.size} `))
    throw new Error(`Range GET of a layer: proxy answered "${rangeProxy.slice(0, 60)}"`)

  const upload = await fetch(`${proxy}/v2/${REPOSITORY}/blobs/uploads/`, {
    method: 'POST',
    signal: signal(),
  })
  await upload.arrayBuffer()
  const location = upload.headers.get('location') ?? ''
  if (upload.status !== 202 || new URL(location, proxy).origin !== new URL(proxy).origin)
    throw new Error(`upload through the proxy: ${upload.status}, Location "${location}"`)
  const cancel = await fetch(new URL(location, proxy), { method: 'DELETE', signal: signal() })
  await cancel.arrayBuffer()

  const started = process.hrtime.bigint()
  const whole = await fetch(`${proxy}${blob}`, { signal: AbortSignal.timeout(LAYER_TIMEOUT_MS) })
  const bytes = (await whole.arrayBuffer()).byteLength
  if (whole.status !== 200 || bytes !== layer.size)
    throw new Error(`GET of a layer through the proxy: ${whole.status}, ${bytes} bytes`)
  return Number(process.hrtime.bigint() - started) / 1e9
}

try {
  const registry = await startRegistry(t)
  const image = await buildImage(join(work, 'image'), {
    layers: Array.from({ length: LAYERS }, () => LAYER_BYTES),
  })
  // Docker schema 2, as Docker Hub serves most images.
  await registry.pushImage(image, `${REPOSITORY}:${TAG}`, { format: 'v2s2' })
  const warmup = await buildImage(join(work, 'warmup'), {
    layers: Array.from({ length: WARMUP_LAYERS }, () => WARMUP_LAYER_BYTES),
  })
  await registry.pushImage(warmup, `${WARMUP_REPOSITORY}:${TAG}`, { format: 'v2s2' })
  const imageBytes = image.manifests[0]?.layers.reduce((sum, l) => sum + l.size, 0) ?? 0
  const firstLayer = image.manifests[0]?.layers[0]
  if (!firstLayer) throw new Error('the image has no layer')

  // The upstream every client uses: the registry itself, or the rate-limited proxy in front of it.
  let upstream: Upstream = registry
  let upstreamLine = 'upstream: docker-registry itself on loopback, unthrottled'
  if (UPSTREAM_RATE !== undefined) {
    const proxy = await startRegistryProxy(registry.url, UPSTREAM_RATE)
    teardowns.teardown(() => proxy.stop())
    const layerSeconds = await checkProxy(proxy.url, registry.url, firstLayer)
    upstream = proxy
    upstreamLine = `upstream: nginx ${nginxVersion()} reverse proxy in front of docker-registry, limit_rate ${(UPSTREAM_RATE / 1e6).toFixed(0)} MB/s per connection (one ${(firstLayer.size / 2 ** 20).toFixed(0)} MiB layer through it alone: ${layerSeconds.toFixed(2)} s, ${(firstLayer.size / 1e6 / layerSeconds).toFixed(0)} MB/s); it is the upstream of the direct copies, of pullthrough and of the direct wrk; CPU columns count the registry, not the proxy`
  }

  say(`# pullthrough Docker pull benchmark, ${new Date().toISOString()}`)
  say(machineLine())
  say(
    `tools: skopeo ${toolVersion('skopeo', ['--version'])}, wrk ${toolVersion('wrk', ['--version'])}, docker-registry ${toolVersion('docker-registry', ['--version'])}`,
  )
  say(
    `image: ${LAYERS} layers of ${(LAYER_BYTES / 2 ** 20).toFixed(0)} MiB random data, ${(imageBytes / 2 ** 20).toFixed(1)} MiB of gzip layers; pullthrough verifyOnRead ${VERIFY_MODE}, log level warn, tagTTL ${TAG_TTL}`,
  )
  say(
    `copies: skopeo copy docker://... ${DEST}:<fresh dir>, ${RUNS} runs, median (each run); each cold copy has a new pullthrough process with an empty store; "running process": it first served a copy of another image (${WARMUP_LAYERS} layers of ${(WARMUP_LAYER_BYTES / 2 ** 20).toFixed(0)} MiB), then the cold and the warm copy`,
  )
  say(upstreamLine)

  const serverPid = registryPid()
  const direct: Copy[] = []
  const coldNew: Copy[] = []
  const cold: Copy[] = []
  const warm: Copy[] = []
  let warmUpstream = 0
  let pt: Pullthrough | undefined
  for (let run = 0; run < RUNS; run++) {
    direct.push(await copy(upstream.host, `direct-${run}`, serverPid))
    if (pt) await stop(pt.child)
    pt = await startPullthrough(upstream.url, join(work, `store-new-${run}`))
    coldNew.push(await copy(pt.host, `cold-new-${run}`, pt.child.pid))
    await stop(pt.child)
    pt = await startPullthrough(upstream.url, join(work, `store-${run}`))
    await copy(pt.host, `warmup-${run}`, pt.child.pid, WARMUP_REPOSITORY)
    cold.push(await copy(pt.host, `cold-${run}`, pt.child.pid))
    const before = await upstreamRequests(pt)
    warm.push(await copy(pt.host, `warm-${run}`, pt.child.pid))
    warmUpstream += (await upstreamRequests(pt)) - before
  }
  if (!pt) throw new Error('no run')
  if (copiedManifests.size !== 1)
    throw new Error('pullthrough and the upstream gave skopeo different manifests')

  // Warm tag-manifest GETs: one GET each first (pullthrough's tag record is there from
  // the copies, well within tagTTL), then wrk against each server in turn.
  await manifestGet(pt.url)
  await manifestGet(upstream.url)
  const wrkUpstream = await wrk(upstream.url)
  const before = await upstreamRequests(pt)
  const wrkPt = await wrk(pt.url)
  const wrkPtUpstream = (await upstreamRequests(pt)) - before

  const wall = (copies: readonly Copy[]) => copies.map((c) => c.seconds)
  const cpu = (copies: readonly Copy[]) => median(copies.map((c) => c.serverCpu))
  const rpsRatio = wrkPt.requestsPerSec / wrkUpstream.requestsPerSec
  /** Wall time of `copies` against the direct copies, with its target ratio if it has one. */
  const copyRow = (label: string, copies: readonly Copy[], target: number | undefined) => {
    const ratio = median(wall(copies)) / median(wall(direct))
    row([
      `${label}, s: median (runs)`,
      seconds(wall(direct)),
      seconds(wall(copies)),
      `${ratio.toFixed(2)}x`,
      target === undefined ? '-' : `<= ${target}x`,
      target === undefined ? '-' : verdict(ratio <= target),
    ])
  }
  /** CPU seconds the serving process used per copy, against the registry's. */
  const cpuRow = (label: string, copies: readonly Copy[]) =>
    row([
      `CPU s of the serving process per ${label} (median)`,
      cpu(direct).toFixed(2),
      cpu(copies).toFixed(2),
      `${(cpu(copies) / cpu(direct)).toFixed(1)}x`,
      '-',
      '-',
    ])
  say('')
  row(['measurement', 'upstream (direct)', 'pullthrough', 'ratio', 'target', 'met'])
  row(['---', '---', '---', '---', '---', '---'])
  // Issue #13: behind a WAN-rate upstream a cold copy costs at most 5%; on loopback a running
  // process's cold copy at most 1.3x (a new process's first pull is bench:node-versions' row).
  const wan = UPSTREAM_RATE !== undefined
  copyRow('cold skopeo copy, new process', coldNew, wan ? WAN_COLD_TARGET : undefined)
  copyRow('cold skopeo copy, running process', cold, wan ? WAN_COLD_TARGET : LOOPBACK_COLD_TARGET)
  copyRow('warm skopeo copy', warm, 1.0)
  cpuRow('cold copy, new process', coldNew)
  cpuRow('cold copy, running process', cold)
  cpuRow('warm copy', warm)
  const cores = (copies: readonly Copy[]) => median(copies.map((c) => c.machineCores))
  row([
    `cores the machine kept busy during a cold copy, running process (of ${availableParallelism()}; median)`,
    cores(direct).toFixed(2),
    cores(cold).toFixed(2),
    '-',
    '-',
    '-',
  ])
  row([
    `upstream requests during the ${RUNS} warm copies`,
    '-',
    warmUpstream,
    '-',
    '0',
    verdict(warmUpstream === 0),
  ])
  row([
    `warm tag-manifest GET, wrk -t${THREADS} -c${CONNECTIONS} ${WRK_SECONDS} s, requests/s`,
    wrkUpstream.requestsPerSec.toFixed(0),
    wrkPt.requestsPerSec.toFixed(0),
    `${rpsRatio.toFixed(2)}x`,
    `>= ${MANIFEST_RPS_TARGET}x`,
    verdict(rpsRatio >= MANIFEST_RPS_TARGET),
  ])
  row([
    'warm tag-manifest GET, p50 latency, ms',
    wrkUpstream.p50Ms.toFixed(2),
    wrkPt.p50Ms.toFixed(2),
    `${(wrkPt.p50Ms / wrkUpstream.p50Ms).toFixed(2)}x`,
    '-',
    '-',
  ])
  row([
    'warm tag-manifest GET, p99 latency, ms',
    wrkUpstream.p99Ms.toFixed(2),
    wrkPt.p99Ms.toFixed(2),
    `${(wrkPt.p99Ms / wrkUpstream.p99Ms).toFixed(2)}x`,
    `< ${MANIFEST_P99_TARGET_MS} ms`,
    verdict(wrkPt.p99Ms < MANIFEST_P99_TARGET_MS),
  ])
  row([
    'upstream requests during the wrk run',
    '-',
    wrkPtUpstream,
    '-',
    '0',
    verdict(wrkPtUpstream === 0),
  ])
} finally {
  await cleanUp()
}
