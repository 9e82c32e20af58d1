/**
 * In-process PyPI indexes serving the fixture distributions (pypi-packages.ts),
 * as test-owned upstreams shaped like the two kinds pullthrough meets:
 *
 * - startPypiUpstream, like pypi.org: the simple API in PEP 691 JSON or PEP 503
 *   HTML by Accept, absolute file URLs on a separate files host (like
 *   files.pythonhosted.org), PEP 700 size and upload-time, PEP 658/714 metadata,
 *   ETag with 304 on If-None-Match.
 * - startMirrorUpstream, like the TUNA mirror (bandersnatch behind nginx): HTML
 *   only whatever the Accept, relative file URLs served by itself, no ETag; and
 *   on demand the 302 to another mirror USTC answers project pages with.
 *
 * Both answer a non-normalized project URL as PyPI does, with a 301 to the PEP
 * 503 normalized one. Every server (index and files host) is a fault server
 * (fault-server.ts): it records its requests and takes faults per path.
 */
import { createHash } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import type { IncomingMessage } from 'node:http'
import type { Test } from 'tap'
import { startFaultServer, text, type FaultServer, type Reply } from './fault-server.ts'
import {
  normalizeName,
  pypiPackages,
  type PypiFile,
  type PypiPackageSet,
  type PypiProject,
} from './pypi-packages.ts'

/** PEP 691 content types. */
export const SIMPLE_JSON = 'application/vnd.pypi.simple.v1+json'
export const SIMPLE_HTML = 'application/vnd.pypi.simple.v1+html'
const TEXT_HTML = 'text/html; charset=utf-8'
/** PEP 700 is API version 1.1: size, upload-time and versions in JSON. */
const PYPI_API_VERSION = '1.1'
/** What bandersnatch writes into its HTML pages. */
const MIRROR_API_VERSION = '1.0'
/** pypi.org's Cache-Control on simple pages. */
const PAGE_CACHE_CONTROL = 'max-age=600, public'

export interface PypiUpstream extends FaultServer {
  /** The index URL a client or pullthrough is given: `<origin>/simple/`. */
  readonly index: string
  readonly packages: PypiPackageSet
  /** Where the files are served: a separate host for the PyPI-like index, the index itself for the mirror. */
  readonly files: FaultServer
  /** Absolute URL of a project's page under its normalized name. */
  pageUrl(project: string): string
  /** Absolute URL of a file (a PypiFile or a filename), without the `#sha256=` fragment. */
  fileUrl(file: PypiFile | string): string
  /** Absolute URL of a wheel's PEP 658 metadata: the file URL plus `.metadata`. */
  metadataUrl(file: PypiFile | string): string
  /** From now on lists only the files `visible` accepts (all when undefined), as if releases came or went. */
  setFiles(visible?: (file: PypiFile) => boolean): void
}

export interface MirrorUpstream extends PypiUpstream {
  /** Answers project pages with a 302 to `<index><project>/` (as USTC does); undefined turns it off. */
  redirectPagesTo(index: string | undefined): void
}

export interface PypiUpstreamOptions {
  /** Default: pypiPackages(). */
  readonly packages?: PypiPackageSet
  /** Lists only these files at first (see setFiles); every file stays downloadable. */
  readonly files?: (file: PypiFile) => boolean
  /** Advertise and serve PEP 658 metadata files; default true. */
  readonly coreMetadata?: boolean
}

export interface MirrorUpstreamOptions extends PypiUpstreamOptions {
  /** Start in redirect mode (see redirectPagesTo). */
  readonly redirectPagesTo?: string
}

function redirect(status: 301 | 302, location: string): Reply {
  return text(status, `${status} redirect to ${location}\n`, { location })
}

/** Escapes text and attribute values for HTML (quotes included: values are in double quotes). */
export function escapeHtml(value: string): string {
  return value
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;')
}

/** Where a file lives on a files host: PyPI's `packages/<2>/<2>/<rest>/<filename>` shape. */
function filePath(file: PypiFile): string {
  const { sha256 } = file
  const dirs = `${sha256.slice(0, 2)}/${sha256.slice(2, 4)}/${sha256.slice(4)}`
  return `/packages/${dirs}/${encodeURIComponent(file.filename)}`
}

/** The representations a PyPI-like index offers, by the media type a client may ask for (PEP 691). */
const OFFERS: Readonly<Record<string, { kind: 'json' | 'html'; contentType: string }>> = {
  [SIMPLE_JSON]: { kind: 'json', contentType: SIMPLE_JSON },
  'application/vnd.pypi.simple.latest+json': { kind: 'json', contentType: SIMPLE_JSON },
  [SIMPLE_HTML]: { kind: 'html', contentType: SIMPLE_HTML },
  'application/vnd.pypi.simple.latest+html': { kind: 'html', contentType: SIMPLE_HTML },
  'text/html': { kind: 'html', contentType: TEXT_HTML },
  'text/*': { kind: 'html', contentType: TEXT_HTML },
  '*/*': { kind: 'html', contentType: TEXT_HTML },
}

/** PEP 691 negotiation: the offer with the highest q (the first on a tie); text/html without Accept. */
function negotiate(accept: string | undefined): (typeof OFFERS)[string] | undefined {
  if (accept === undefined || accept.trim() === '') return OFFERS['text/html']
  let best: (typeof OFFERS)[string] | undefined
  let bestQ = 0
  for (const part of accept.split(',')) {
    const [type = '', ...params] = part.split(';').map((s) => s.trim().toLowerCase())
    const qParam = params.find((p) => p.startsWith('q='))
    const q = qParam === undefined ? 1 : Number(qParam.slice(2))
    const offer = OFFERS[type]
    if (offer && q > bestQ) {
      best = offer
      bestQ = q
    }
  }
  return best
}

/** Strong ETag of a representation. */
function etagOf(body: Buffer): string {
  return `"${createHash('sha256').update(body).digest('hex').slice(0, 32)}"`
}

/** RFC 9110 If-None-Match (weak comparison). */
function noneMatch(header: string | undefined, etag: string): boolean {
  if (header === undefined) return false
  const strip = (tag: string) => tag.trim().replace(/^W\//, '')
  return header.split(',').some((tag) => tag.trim() === '*' || strip(tag) === strip(etag))
}

interface Listing {
  readonly packages: PypiPackageSet
  visible: (file: PypiFile) => boolean
  /** Like PyPI's last serial: bumped whenever the listing changes. */
  serial: number
  readonly coreMetadata: boolean
}

function listedFiles(listing: Listing, project: PypiProject): PypiFile[] {
  return project.files.filter((f) => listing.visible(f))
}

/** PEP 503 attributes plus PEP 592 yanked, PEP 345 requires-python, PEP 658/714 metadata. */
function anchor(file: PypiFile, href: string, coreMetadata: boolean): string {
  const attributes: [string, string][] = [['href', `${href}#sha256=${file.sha256}`]]
  if (file.requiresPython !== undefined) {
    attributes.push(['data-requires-python', file.requiresPython])
  }
  // An empty value, not a bare attribute: pip's HTMLParser reads a bare one as None, not yanked.
  if (file.yanked !== undefined) attributes.push(['data-yanked', file.yanked])
  if (coreMetadata && file.metadata) {
    attributes.push(['data-dist-info-metadata', `sha256=${file.metadata.sha256}`])
    attributes.push(['data-core-metadata', `sha256=${file.metadata.sha256}`])
  }
  const rendered = attributes.map(([k, v]) => `${k}="${escapeHtml(v)}"`).join(' ')
  return `    <a ${rendered}>${escapeHtml(file.filename)}</a><br />`
}

function htmlPage(title: string, apiVersion: string, links: string[]): string {
  return [
    '<!DOCTYPE html>',
    '<html>',
    '  <head>',
    `    <meta name="pypi:repository-version" content="${apiVersion}">`,
    `    <title>${escapeHtml(title)}</title>`,
    '  </head>',
    '  <body>',
    `    <h1>${escapeHtml(title)}</h1>`,
    ...links,
    '  </body>',
    '</html>',
    '',
  ].join('\n')
}

function projectHtml(
  listing: Listing,
  project: PypiProject,
  href: (file: PypiFile) => string,
  apiVersion: string,
): string {
  const links = listedFiles(listing, project).map((f) => anchor(f, href(f), listing.coreMetadata))
  return htmlPage(`Links for ${project.normalized}`, apiVersion, links)
}

/** PEP 691 project detail with the PEP 700 fields. */
function projectJson(
  listing: Listing,
  project: PypiProject,
  url: (file: PypiFile) => string,
): string {
  const files = listedFiles(listing, project)
  const metadata = (file: PypiFile) =>
    listing.coreMetadata && file.metadata ? { sha256: file.metadata.sha256 } : false
  return JSON.stringify({
    meta: { 'api-version': PYPI_API_VERSION, '_last-serial': listing.serial },
    name: project.normalized,
    versions: [...new Set(files.map((f) => f.version))],
    files: files.map((file) => ({
      filename: file.filename,
      url: url(file),
      hashes: { sha256: file.sha256 },
      'requires-python': file.requiresPython ?? null,
      size: file.size,
      'upload-time': file.uploadTime,
      yanked: file.yanked === undefined ? false : file.yanked === '' ? true : file.yanked,
      // PEP 714: `core-metadata`, plus the misnamed key pypi.org shipped first. Never
      // `dist-info-metadata`: pip 22.3 to 23.1 crash on it (TypeError: unhashable dict).
      'core-metadata': metadata(file),
      'data-dist-info-metadata': metadata(file),
    })),
  })
}

/** The files (and metadata files) a host serves, by path. */
async function fileRoutes(listing: Listing): Promise<Map<string, Buffer>> {
  const routes = new Map<string, Buffer>()
  for (const project of listing.packages.projects) {
    for (const file of project.files) {
      routes.set(filePath(file), await readFile(file.path))
      if (listing.coreMetadata && file.metadata) {
        routes.set(`${filePath(file)}.metadata`, await readFile(file.metadata.path))
      }
    }
  }
  return routes
}

function serveFile(files: Map<string, Buffer>, path: string, etag: boolean): Reply | undefined {
  const body = files.get(path)
  if (!body) return undefined
  const headers: Record<string, string> = {
    'content-type': 'application/octet-stream',
    'accept-ranges': 'bytes',
  }
  if (etag) headers.etag = `"${createHash('sha256').update(body).digest('hex')}"`
  return { status: 200, headers, body, ranges: true }
}

type PageTarget =
  | { readonly kind: 'redirect'; readonly reply: Reply }
  | { readonly kind: 'project'; readonly normalized: string }

/** `/simple/<name>/`: the normalized name, or PyPI's 301 for another spelling or a missing slash. */
function projectTarget(path: string): PageTarget | undefined {
  const match = /^\/simple\/([^/]+)(\/?)$/.exec(path)
  if (!match) return undefined
  let name: string
  try {
    name = decodeURIComponent(match[1]!)
  } catch {
    return undefined
  }
  const normalized = normalizeName(name)
  if (name !== normalized || match[2] !== '/') {
    return {
      kind: 'redirect',
      reply: redirect(301, `/simple/${encodeURIComponent(normalized)}/`),
    }
  }
  return { kind: 'project', normalized }
}

function findProject(listing: Listing, normalized: string): PypiProject | undefined {
  return listing.packages.projects.find((p) => p.normalized === normalized)
}

function newListing(packages: PypiPackageSet, options: PypiUpstreamOptions): Listing {
  return {
    packages,
    visible: options.files ?? (() => true),
    serial: 1,
    coreMetadata: options.coreMetadata ?? true,
  }
}

function resolveFile(packages: PypiPackageSet, file: PypiFile | string): PypiFile {
  return typeof file === 'string' ? packages.file(file) : file
}

/** Answers a PyPI-like page: negotiated, with ETag, 304 on a matching If-None-Match. */
function pypiPage(
  req: IncomingMessage,
  listing: Listing,
  render: (kind: 'json' | 'html') => string,
): Reply {
  const offer = negotiate(req.headers.accept)
  if (!offer) return text(406, `not acceptable; offered: ${Object.keys(OFFERS).join(', ')}\n`)
  const body = Buffer.from(render(offer.kind))
  const etag = etagOf(body)
  const headers = {
    'content-type': offer.contentType,
    etag,
    vary: 'Accept',
    'cache-control': PAGE_CACHE_CONTROL,
    'x-pypi-last-serial': String(listing.serial),
  }
  if (noneMatch(req.headers['if-none-match'], etag)) {
    return { status: 304, headers, body: Buffer.alloc(0) }
  }
  return { status: 200, headers, body }
}

/** Starts a pypi.org-like index and its separate files host; both stopped at test end. */
export async function startPypiUpstream(
  t: Test,
  options: PypiUpstreamOptions = {},
): Promise<PypiUpstream> {
  const packages = options.packages ?? (await pypiPackages())
  const listing = newListing(packages, options)
  const files = await fileRoutes(listing)
  const filesHost = await startFaultServer(t, (_req, path) => {
    return serveFile(files, path, true) ?? text(404, 'Not Found\n')
  })
  const fileUrl = (file: PypiFile) => `${filesHost.origin}${filePath(file)}`

  const index = await startFaultServer(t, (req, path) => {
    if (path === '/simple') return redirect(301, '/simple/')
    if (path === '/simple/') {
      return pypiPage(req, listing, (kind) =>
        kind === 'json'
          ? JSON.stringify({
              meta: { 'api-version': PYPI_API_VERSION, '_last-serial': listing.serial },
              projects: packages.projects.map((p) => ({ name: p.name })),
            })
          : htmlPage(
              'Simple index',
              PYPI_API_VERSION,
              packages.projects.map(
                (p) => `    <a href="/simple/${p.normalized}/">${escapeHtml(p.name)}</a>`,
              ),
            ),
      )
    }
    const legacy = /^\/pypi\/([^/]+)\/json$/.exec(path)
    if (legacy) {
      const project = findProject(listing, normalizeName(legacy[1] ?? ''))
      if (!project) return text(404, 'Not Found\n')
      return {
        status: 200,
        headers: { 'content-type': 'application/json' },
        body: Buffer.from(legacyJson(listing, project, fileUrl)),
      }
    }
    const target = projectTarget(path)
    if (target?.kind === 'redirect') return target.reply
    const project = target && findProject(listing, target.normalized)
    if (!project) return text(404, 'Not Found\n')
    return pypiPage(req, listing, (kind) =>
      kind === 'json'
        ? projectJson(listing, project, fileUrl)
        : projectHtml(listing, project, fileUrl, PYPI_API_VERSION),
    )
  })
  return withPypiApi(index, filesHost, listing, fileUrl)
}

/** pypi.org's legacy JSON API (`/pypi/<project>/json`): the latest version's files and all releases. */
function legacyJson(
  listing: Listing,
  project: PypiProject,
  fileUrl: (file: PypiFile) => string,
): string {
  const files = listedFiles(listing, project)
  const entry = (file: PypiFile) => ({
    filename: file.filename,
    url: fileUrl(file),
    digests: { sha256: file.sha256 },
    packagetype: file.kind === 'wheel' ? 'bdist_wheel' : 'sdist',
    requires_python: file.requiresPython ?? null,
    size: file.size,
    yanked: file.yanked !== undefined,
    yanked_reason: file.yanked || null,
  })
  const latest = files.at(-1)?.version
  const releases: Record<string, unknown[]> = {}
  for (const file of files) (releases[file.version] ??= []).push(entry(file))
  return JSON.stringify({
    info: { name: project.name, version: latest },
    urls: files.filter((f) => f.version === latest).map(entry),
    releases,
  })
}

function withPypiApi(
  index: FaultServer,
  filesHost: FaultServer,
  listing: Listing,
  fileUrl: (file: PypiFile) => string,
): PypiUpstream {
  const { packages } = listing
  return {
    ...index,
    index: `${index.origin}/simple/`,
    packages,
    files: filesHost,
    pageUrl: (project) => `${index.origin}/simple/${normalizeName(project)}/`,
    fileUrl: (file) => fileUrl(resolveFile(packages, file)),
    metadataUrl: (file) => `${fileUrl(resolveFile(packages, file))}.metadata`,
    setFiles: (visible) => {
      listing.visible = visible ?? (() => true)
      listing.serial += 1
    },
  }
}

/** Starts a TUNA-like mirror: HTML only, relative links to files it serves itself; stopped at test end. */
export async function startMirrorUpstream(
  t: Test,
  options: MirrorUpstreamOptions = {},
): Promise<MirrorUpstream> {
  const packages = options.packages ?? (await pypiPackages())
  const listing = newListing(packages, options)
  const files = await fileRoutes(listing)
  let redirectTo = options.redirectPagesTo
  const html = (body: string): Reply => ({
    status: 200,
    headers: { 'content-type': 'text/html' },
    body: Buffer.from(body),
  })

  const server = await startFaultServer(t, (_req, path) => {
    const file = serveFile(files, path, false)
    if (file) return file
    if (path === '/simple') return redirect(301, '/simple/')
    if (path === '/simple/') {
      const links = packages.projects.map(
        (p) => `    <a href="${p.normalized}/">${escapeHtml(p.name)}</a><br />`,
      )
      return html(htmlPage('Simple Index', MIRROR_API_VERSION, links))
    }
    const target = projectTarget(path)
    if (target?.kind === 'redirect') return target.reply
    if (!target) return text(404, 'Not Found\n')
    if (redirectTo !== undefined) {
      return redirect(302, new URL(`${target.normalized}/`, redirectTo).href)
    }
    const project = findProject(listing, target.normalized)
    if (!project) return text(404, 'Not Found\n')
    // Relative to /simple/<project>/, as bandersnatch writes them.
    return html(projectHtml(listing, project, (f) => `../..${filePath(f)}`, MIRROR_API_VERSION))
  })
  const upstream = withPypiApi(server, server, listing, (f) => `${server.origin}${filePath(f)}`)
  return {
    ...upstream,
    redirectPagesTo: (index) => {
      redirectTo = index
    },
  }
}

/**
 * A config with one default index `pypi` whose upstreams are `upstreams`, in
 * this order, with files allowed from each one's files host and no retries;
 * `extra` adds lines to the index entry (six spaces of indent).
 */
export function indexYaml(upstreams: readonly PypiUpstream[], extra = ''): string {
  const urls = upstreams.map((u) => `{ url: "${u.index}" }`).join(', ')
  const hosts = upstreams.map((u) => `"${u.files.origin}"`).join(', ')
  return `pypi:
  indexes:
    - name: pypi
      default: true
      upstreams: [${urls}]
      fileHosts: [${hosts}]
      retry: { attempts: 1 }
${extra}`
}
