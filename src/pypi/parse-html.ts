/**
 * PEP 503 HTML project pages into the model: every `<a href>` is a file whose
 * name is the link text, with its hash in the URL fragment (`#sha256=…`) and
 * its PEP 503/592/658/714 `data-*` attributes. Entities are decoded by
 * htmlparser2 (a tokenizer: nothing is fetched or run). The project list page
 * (`/simple/`) is not parsed here.
 */
import { Parser } from 'htmlparser2'
import { ProjectPageInvalidError } from './errors.ts'
import {
  isKnownHashName,
  normalizeHash,
  parseHashPair,
  sortedHashes,
  type Hashes,
} from './hashes.ts'
import type { ParsedProjectPage, ParsePageOptions, ProjectFile } from './model.ts'
import { normalizeProjectName } from './names.ts'
import { checkLink, collectFiles, resolveFileUrl, type CheckedLink } from './page-files.ts'
import { isSupportedApiVersion } from './repository-version.ts'

interface Anchor {
  readonly attribs: Readonly<Record<string, string>>
  text: string
}

/** What the tokenizer pass collects from a page. */
interface ScannedPage {
  readonly anchors: Anchor[]
  base: string | undefined
  repositoryVersion: string | undefined
  serial: number | undefined
}

/** Parses a PEP 503 project page body. */
export function parseProjectHtml(body: string, options: ParsePageOptions): ParsedProjectPage {
  const name = normalizeProjectName(options.project)
  const scanned = scan(body)
  const apiVersion = scanned.repositoryVersion
  if (apiVersion !== undefined && !isSupportedApiVersion(apiVersion)) {
    throw new ProjectPageInvalidError(name, `unsupported repository-version ${apiVersion}`)
  }
  const base = baseUrl(scanned.base, options.pageUrl)
  const links = scanned.anchors.flatMap((anchor) => readAnchor(anchor, base) ?? [])
  const { files, dropped } = collectFiles(links)
  const lastSerial = scanned.serial
  const page = { name, files, ...(lastSerial === undefined ? {} : { lastSerial }) }
  return { page, dropped, apiVersion }
}

function scan(body: string): ScannedPage {
  const page: ScannedPage = {
    anchors: [],
    base: undefined,
    repositoryVersion: undefined,
    serial: undefined,
  }
  let open: Anchor | undefined
  const parser = new Parser({
    onopentag(tag, attribs) {
      if (tag === 'a') {
        open = { attribs, text: '' }
        page.anchors.push(open)
      } else if (tag === 'base') {
        page.base ??= attribs.href
      } else if (tag === 'meta' && attribs.name?.toLowerCase() === 'pypi:repository-version') {
        page.repositoryVersion ??= attribs.content?.trim()
      }
    },
    ontext(text) {
      if (open !== undefined) open.text += text
    },
    onclosetag(tag) {
      if (tag === 'a') open = undefined
    },
    oncomment(data) {
      // PyPI ends its pages with <!--SERIAL n-->, the project's last change serial.
      const match = /^\s*SERIAL\s+(\d{1,15})\s*$/.exec(data)
      if (match !== null) page.serial = Number(match[1])
    },
  })
  parser.write(body)
  parser.end()
  return page
}

/** The first `<base href>` resolved against the page URL, as browsers and pip do; else the page URL. */
function baseUrl(base: string | undefined, pageUrl: string): string {
  return (base === undefined ? undefined : resolveFileUrl(base, pageUrl)?.href) ?? pageUrl
}

/** One link; undefined for an anchor without href (not a file link). */
function readAnchor({ attribs, text }: Anchor, base: string): CheckedLink | undefined {
  const href = attribs.href
  if (href === undefined) return undefined
  const filename = text.trim() || lastPathSegment(href, base)
  const hashes = fragmentHashes(href)
  if (hashes === undefined) return { dropped: { href, filename, reason: 'invalid-hash' } }
  const file: Omit<ProjectFile, 'url'> = { filename, hashes, ...dataAttributes(attribs) }
  return checkLink({ href, file }, base)
}

/**
 * The hashes in an href's fragment (`#sha256=…`, pip also reads `&`-joined
 * pairs such as `#md5=…&egg=…`). Pairs with another name are ignored; a
 * malformed digest under a hash name makes the link unusable (undefined).
 */
function fragmentHashes(href: string): Hashes | undefined {
  const at = href.indexOf('#')
  if (at === -1) return {}
  const pairs: [string, string][] = []
  for (const part of href.slice(at + 1).split('&')) {
    const [key = '', ...rest] = part.split('=')
    if (!isKnownHashName(key)) continue
    const pair = normalizeHash(key, rest.join('='))
    if (pair === undefined) return undefined
    pairs.push(pair)
  }
  return sortedHashes(pairs)
}

/** PEP 503 `data-requires-python`, PEP 592 `data-yanked`, PEP 658/714 core metadata. */
function dataAttributes(attribs: Readonly<Record<string, string>>): Partial<ProjectFile> {
  const requiresPython = attribs['data-requires-python']?.trim()
  const yanked = attribs['data-yanked']
  const coreMetadata = readCoreMetadata(attribs)
  return {
    ...(requiresPython ? { requiresPython } : {}),
    // PEP 592: the attribute's presence means yanked; its value, when not empty, is the reason.
    ...(yanked === undefined ? {} : { yanked: yanked.trim() === '' ? true : yanked }),
    ...(coreMetadata === undefined ? {} : { coreMetadata }),
  }
}

/**
 * PEP 714: `data-core-metadata` when present, else the PEP 658
 * `data-dist-info-metadata`; `true` or one `name=hex` pair. Anything else is
 * read as "not advertised", so clients fetch the file itself.
 */
function readCoreMetadata(attribs: Readonly<Record<string, string>>): Hashes | true | undefined {
  const value = (attribs['data-core-metadata'] ?? attribs['data-dist-info-metadata'])?.trim()
  if (value === undefined) return undefined
  if (value.toLowerCase() === 'true') return true
  const pair = parseHashPair(value)
  return pair === undefined ? undefined : sortedHashes([pair])
}

/** The decoded last path segment of a link, for a link without text. */
function lastPathSegment(href: string, base: string): string {
  const segment = resolveFileUrl(href, base)?.pathname.split('/').pop() ?? ''
  try {
    return decodeURIComponent(segment)
  } catch {
    return segment
  }
}
