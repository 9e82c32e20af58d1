/**
 * The tabs of the status page, as HTML from the data the JSON API serves:
 * overview, repositories and projects, catalog, upstreams, connect.
 */
import { formatBytes, formatRatio, formatTime } from '../../insight/format.ts'
import type {
  Summary,
  SeriesPoint,
  SubjectRow,
  Usage,
  WindowName,
} from '../../insight/statistics.ts'
import type { CatalogReference, CatalogRow } from '../../insight/catalog.ts'
import type { RecentEvent } from '../../observability/event-ring.ts'
import type { MirrorSnapshot } from '../../upstream/pool.ts'
import { pullsChart, usageBar } from './chart.ts'
import { html, type Html } from './html.ts'

export const TABS = [
  ['/-/', 'Overview'],
  ['/-/repositories', 'Repositories & projects'],
  ['/-/catalog', 'Catalog'],
  ['/-/upstreams', 'Upstreams'],
  ['/-/connect', 'Connect'],
] as const
export type TabPath = (typeof TABS)[number][0]

export interface LayoutData {
  readonly current: TabPath
  readonly title: string
  /** The replica's host name. */
  readonly node: string
  readonly offline: boolean
}

export function layout({ current, title, node, offline }: LayoutData, body: Html): Html {
  return html`<!doctype html>
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <title>${title} · pullthrough</title>
        <link rel="stylesheet" href="/-/page.css" />
      </head>
      <body>
        <header>
          <h1>pullthrough</h1>
          <span class="node">replica ${node}</span>
          ${offline ? html`<span id="offline" class="state-open">offline: no upstream is contacted</span>` : ''}
          <nav>
            ${TABS.map(([path, label]) => html`<a href="${path}" ${path === current ? html` aria-current="page"` : ''}>${label}</a>`)}
          </nav>
        </header>
        <main>${body}</main>
      </body>
    </html>`
}

export interface OverviewData {
  readonly windows: Record<WindowName, Summary>
  readonly disk: {
    readonly usedBytes: number
    readonly maxBytes: number
    readonly artifacts: number
  }
  readonly series: readonly SeriesPoint[]
  readonly repositories: readonly SubjectRow[]
  readonly projects: readonly SubjectRow[]
  readonly events: readonly RecentEvent[]
  readonly now: number
}

export function overview(data: OverviewData): Html {
  const day = data.windows['24h'].all
  const week = data.windows['7d'].all
  const hour = data.windows['1h'].all
  const { disk } = data
  return html`<section class="cards">
      ${card('Hit ratio, 24 h', formatRatio(day.hitRatio), `${day.pulls.total} pulls; 7 d: ${formatRatio(week.hitRatio)}`, 'hit-ratio')}
      ${card('Bandwidth saved, 24 h', formatBytes(day.bytesFromCache), `7 d: ${formatBytes(week.bytesFromCache)}`, 'saved')}
      ${card('From upstream, 24 h', formatBytes(day.bytesFromUpstream), `7 d: ${formatBytes(week.bytesFromUpstream)}`, 'upstream')}
      ${card('Pulls, last hour', String(hour.pulls.total), `clients: ${hour.clients}`, 'pulls-hour')}
      ${card('Served stale, 24 h', String(day.pulls.stale), 'every upstream failing', 'stale')}
      ${card('Disk', formatBytes(disk.usedBytes), `of ${formatBytes(disk.maxBytes)} · ${disk.artifacts} artifacts`, 'disk')}
    </section>
    ${usageBar(disk.usedBytes, disk.maxBytes)}
    <h2>Pulls per hour, last 24 hours</h2>
    ${pullsChart(data.series, data.now, 24)}
    <h2>By protocol</h2>
    ${protocolTable(data.windows)}
    <h2>Top repositories, 24 h</h2>
    ${subjectTable(data.repositories, 'repositories')}
    <h2>Top projects, 24 h</h2>
    ${subjectTable(data.projects, 'projects')}
    <h2>Recent pulls</h2>
    ${eventTable(data.events)}`
}

function card(label: string, value: string, sub: string, id: string): Html {
  return html`<div class="card" id="${id}">
    <div class="label">${label}</div>
    <div class="value">${value}</div>
    <div class="sub">${sub}</div>
  </div>`
}

function protocolTable(windows: Record<WindowName, Summary>): Html {
  const rows = (Object.keys(windows) as WindowName[]).flatMap((window) =>
    (['docker', 'pypi'] as const).map((protocol) => {
      const u = windows[window][protocol]
      return html`<tr>
        <td>${window}</td>
        <td>${protocol}</td>
        ${usageCells(u)}
      </tr>`
    }),
  )
  return html`<div class="scroll">
    <table>
      <thead>
        <tr>
          <th>window</th>
          <th>protocol</th>
          ${USAGE_HEADERS}
        </tr>
      </thead>
      <tbody>
        ${rows}
      </tbody>
    </table>
  </div>`
}

/** The headers of the cells usageCells gives. */
const USAGE_HEADERS = html`<th class="num">pulls</th>
  <th class="num">hit</th>
  <th class="num">miss</th>
  <th class="num">stale</th>
  <th class="num">hit ratio</th>
  <th class="num">served</th>
  <th class="num">saved</th>
  <th class="num">clients</th>`

function usageCells(u: Usage): Html {
  return html`<td class="num">${u.pulls.total}</td>
    <td class="num">${u.pulls.hit}</td>
    <td class="num">${u.pulls.miss}</td>
    <td class="num">${u.pulls.stale}</td>
    <td class="num">${formatRatio(u.hitRatio)}</td>
    <td class="num">${formatBytes(u.bytesServed)}</td>
    <td class="num">${formatBytes(u.bytesFromCache)}</td>
    <td class="num">${u.clients}</td>`
}

export function subjectTable(rows: readonly SubjectRow[], id: string): Html {
  if (rows.length === 0) return html`<p class="muted" id="${id}">Nothing pulled in this window.</p>`
  const body = rows.map(
    (r) =>
      html`<tr>
        <td>${r.pool}</td>
        <td><code>${r.name}</code></td>
        ${usageCells(r)}
        <td>${formatTime(r.lastPulled)}</td>
      </tr>`,
  )
  return html`<div class="scroll">
    <table id="${id}">
      <thead>
        <tr>
          <th>pool</th>
          <th>name</th>
          ${USAGE_HEADERS}
          <th>last pulled (UTC)</th>
        </tr>
      </thead>
      <tbody>
        ${body}
      </tbody>
    </table>
  </div>`
}

function eventTable(events: readonly RecentEvent[]): Html {
  if (events.length === 0) return html`<p class="muted">No pulls since this replica started.</p>`
  const body = events.map(
    (e) =>
      html`<tr>
        <td>${formatTime(e.time)}</td>
        <td>${e.protocol}</td>
        <td><code>${e.subject}</code></td>
        <td><code>${e.reference}</code></td>
        <td><span class="result ${e.cache}">${e.cache}</span></td>
        <td class="num">${formatBytes(e.bytes)}</td>
        <td>${e.clientIp}</td>
      </tr>`,
  )
  return html`<div class="scroll">
    <table id="events">
      <thead>
        <tr>
          <th>time (UTC)</th>
          <th>protocol</th>
          <th>name</th>
          <th>reference</th>
          <th>result</th>
          <th class="num">bytes</th>
          <th>client</th>
        </tr>
      </thead>
      <tbody>
        ${body}
      </tbody>
    </table>
  </div>`
}

export interface SubjectsData {
  readonly repositories: readonly SubjectRow[]
  readonly projects: readonly SubjectRow[]
  readonly window: string
  readonly rollup: 'subject' | 'namespace'
  readonly sort: string
}

export function subjects(data: SubjectsData): Html {
  const link = (
    change: Partial<Pick<SubjectsData, 'window' | 'rollup' | 'sort'>>,
    label: string,
  ) => {
    const next = { window: data.window, rollup: data.rollup, sort: data.sort, ...change }
    const current =
      next.window === data.window && next.rollup === data.rollup && next.sort === data.sort
    return html`<a
      href="/-/repositories?window=${next.window}&amp;rollup=${next.rollup}&amp;sort=${next.sort}"
      ${current ? html` aria-current="page"` : ''}
      >${label}</a
    >`
  }
  return html`<nav class="pager">
      Window: ${['1h', '24h', '7d', '30d', '90d'].map((w) => link({ window: w }, w))}
    </nav>
    <nav class="pager">
      Sort by: ${(['pulls', 'bytes', 'last', 'clients'] as const).map((s) => link({ sort: s }, s))}
      ·
      ${link({ rollup: data.rollup === 'subject' ? 'namespace' : 'subject' }, data.rollup === 'subject' ? 'per namespace' : 'per repository / project')}
    </nav>
    <h2>Docker ${data.rollup === 'namespace' ? 'namespaces' : 'repositories'}</h2>
    ${subjectTable(data.repositories, 'repositories')}
    <h2>PyPI ${data.rollup === 'namespace' ? 'indexes' : 'projects'}</h2>
    ${subjectTable(data.projects, 'projects')}`
}

export interface CatalogData {
  readonly items: readonly CatalogRow[]
  readonly total: number
  readonly offset: number
  readonly limit: number
  readonly digest: string | undefined
  readonly unusedBytes: number
  readonly unusedCount: number
}

/** After a reference: whether its tag moved on or its tag or page is past its TTL. */
function referenceNote(r: CatalogReference): Html | string {
  if (r.current === false) return html` <span class="muted">(tag moved)</span>`
  if (r.stale === true) return html` <span class="stale-ref">(stale)</span>`
  return ''
}

export function catalog(data: CatalogData): Html {
  const rows = data.items.map(
    (b) =>
      html`<tr>
        <td class="digest"><code>${b.digest}</code></td>
        <td title="${b.mediaType ?? ''}">${b.kind}${b.pinned ? ' (pinned)' : ''}</td>
        <td class="num">${formatBytes(b.size)}</td>
        <td>${formatTime(b.firstCached)}</td>
        <td>${formatTime(b.lastAccessed)}</td>
        <td class="num">${b.hits}</td>
        <td>
          ${b.references.map(
            (r, i) =>
              html`${i > 0 ? ', ' : ''}<code>${r.name}${r.reference === null ? '' : r.protocol === 'docker' ? `:${r.reference}` : ` ${r.reference}`}</code>${referenceNote(r)}`,
          )}
        </td>
      </tr>`,
  )
  const query = data.digest === undefined ? '' : `&digest=${encodeURIComponent(data.digest)}`
  const next = data.offset + data.items.length
  return html`<form class="search" method="get" action="/-/catalog">
      <input
        name="digest"
        placeholder="sha256:… (prefix)"
        value="${data.digest ?? ''}"
        aria-label="digest prefix"
      /><button type="submit">Search</button>
    </form>
    <p class="muted">
      ${data.total}
      artifacts${data.digest === undefined ? '' : html` matching <code>${data.digest}</code>`}, most
      recently used first. Not pulled for 30 days: ${data.unusedCount}
      (${formatBytes(data.unusedBytes)}).
    </p>
    <div class="scroll">
      <table id="catalog">
        <thead>
          <tr>
            <th>digest</th>
            <th>type</th>
            <th class="num">size</th>
            <th>first cached (UTC)</th>
            <th>last accessed (UTC)</th>
            <th class="num">hits</th>
            <th>pulled through</th>
          </tr>
        </thead>
        <tbody>
          ${rows}
        </tbody>
      </table>
    </div>
    <p class="pager">
      ${data.offset > 0 ? html`<a href="/-/catalog?offset=${Math.max(0, data.offset - data.limit)}${query}">previous</a>` : ''}${next < data.total ? html`<a href="/-/catalog?offset=${next}${query}">next</a>` : ''}
    </p>`
}

export function upstreams(
  items: readonly (MirrorSnapshot & { protocol: string; kind: string })[],
): Html {
  const stateClass = (state: MirrorSnapshot['state']) =>
    state === 'healthy' ? 'state-healthy' : state === 'breaker open' ? 'state-open' : 'state-half'
  const rows = items.map(
    (m) =>
      html`<tr>
        <td>${m.protocol}</td>
        <td>${m.kind}</td>
        <td>${m.pool}</td>
        <td><code>${m.upstream}</code></td>
        <td class="${stateClass(m.state)}">
          ${m.state}${m.retryInMs > 0 ? ` (retry in ${Math.ceil(m.retryInMs / 1000)} s)` : ''}
        </td>
        <td class="num">${m.ttfbMs ?? '-'}</td>
        <td class="num">
          ${m.bytesPerSecond === null ? '-' : `${formatBytes(m.bytesPerSecond)}/s`}
        </td>
        <td class="num">${m.requests}</td>
        <td class="num">${formatRatio(m.errorRate)}</td>
        <td>
          ${m.lastFailure ? `${m.lastFailure.reason}${m.lastFailure.status === undefined ? '' : ` ${m.lastFailure.status}`} at ${formatTime(m.lastFailure.at)}` : '-'}
        </td>
        <td class="num">${formatBytes(m.bytesFetched)}</td>
      </tr>`,
  )
  return html`<p class="muted">As this replica sees them, since it started.</p>
    <div class="scroll">
      <table id="upstreams">
        <thead>
          <tr>
            <th>protocol</th>
            <th>kind</th>
            <th>pool</th>
            <th>upstream</th>
            <th>state</th>
            <th class="num">TTFB ms</th>
            <th class="num">throughput</th>
            <th class="num">requests</th>
            <th class="num">errors</th>
            <th>last failure</th>
            <th class="num">fetched</th>
          </tr>
        </thead>
        <tbody>
          ${rows}
        </tbody>
      </table>
    </div>`
}

export interface ConnectData {
  /** Where clients reach this server, e.g. `http://cache.internal:5000`. */
  readonly base: string
  readonly registries: readonly string[]
  /** Index names; the first is the default one, served at /simple/. */
  readonly indexes: readonly { readonly name: string; readonly isDefault: boolean }[]
}

export function connect(data: ConnectData): Html {
  const url = new URL(data.base)
  const hostPort = url.host
  const insecure = url.protocol === 'http:'
  const daemon = JSON.stringify(
    { 'registry-mirrors': [data.base], ...(insecure ? { 'insecure-registries': [hostPort] } : {}) },
    null,
    2,
  )
  const hosts = data.registries.map((name) => {
    const server = name === 'docker.io' ? 'https://registry-1.docker.io' : `https://${name}`
    return html`<h3><code>/etc/containerd/certs.d/${name}/hosts.toml</code></h3>
      <pre>
server = "${server}"

[host."${data.base}"]
  capabilities = ["pull", "resolve"]</pre>`
  })
  const indexUrl = (index: { name: string; isDefault: boolean }) =>
    index.isDefault ? `${data.base}/simple/` : `${data.base}/pypi/${index.name}/simple/`
  const main = data.indexes.find((i) => i.isDefault) ?? data.indexes[0]
  const pypi = main
    ? html`<h3>
          <code>pip.conf</code> (<code>/etc/pip.conf</code> or <code>~/.config/pip/pip.conf</code>)
        </h3>
        <pre>
[global]
index-url = ${indexUrl(main)}${insecure ? `\ntrusted-host = ${url.hostname}` : ''}</pre>
        <h3>Environment (pip and uv)</h3>
        <pre>
export PIP_INDEX_URL=${indexUrl(main)}${insecure ? `\nexport PIP_TRUSTED_HOST=${url.hostname}` : ''}
export UV_DEFAULT_INDEX=${indexUrl(main)}${insecure ? `\nexport UV_INSECURE_HOST=${url.hostname}` : ''}</pre>
        <h3><code>pyproject.toml</code> (uv)</h3>
        <pre>
[[tool.uv.index]]
url = "${indexUrl(main)}"
default = true</pre>
        ${data.indexes.length > 1 ? html`<p>Other indexes: ${data.indexes.filter((i) => i !== main).map((i) => html`<code>${indexUrl(i)}</code> `)}</p>` : ''}`
    : html`<p class="muted">No PyPI index is configured.</p>`
  return html`<p>
      Clients reach this server at
      <code id="base">${data.base}</code> (<code>server.publicUrl</code>, else the address this page
      was asked at).
    </p>
    <h2>Docker (<code>/etc/docker/daemon.json</code>)</h2>
    <pre id="daemon-json">${daemon}</pre>
    <p class="muted">
      Then <code>systemctl restart docker</code>. Docker uses mirrors for Docker Hub only; pull
      other registries as <code>${hostPort}/ghcr.io/org/app:tag</code>.
    </p>
    <h2>containerd and Kubernetes nodes</h2>
    ${hosts}
    <p class="muted">
      containerd needs <code>config_path = "/etc/containerd/certs.d"</code> in its registry
      configuration.
    </p>
    <h2>pip and uv</h2>
    ${pypi}`
}
