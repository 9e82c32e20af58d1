/**
 * The neutral project page: what every upstream format (PEP 503 HTML, PEP 691
 * JSON) parses into, what the metadata store keeps, and what every response
 * is rendered from. Plain JSON data, no classes, no URL objects.
 */

/** One distribution file of a project. */
export interface ProjectFile {
  /** The distribution filename (checked by `isDistFilename`). */
  readonly filename: string
  /** Absolute upstream URL, fragment removed. Not yet checked against the host allowlist. */
  readonly url: string
  /** Lowercase hashlib name -> lowercase hex digest, e.g. `{ sha256: '…' }`; may be empty. */
  readonly hashes: Readonly<Record<string, string>>
  /** PEP 345 Requires-Python, decoded (`>=3.8`, never `&gt;=3.8`). */
  readonly requiresPython?: string
  /** PEP 592: absent = not yanked; `true` = yanked without a reason; else the (non-empty) reason. */
  readonly yanked?: string | true
  /**
   * PEP 658/714: absent = no metadata file advertised; `true` = `<url>.metadata`
   * exists, hashes unknown; a record = it exists with these (non-empty) hashes.
   */
  readonly coreMetadata?: Readonly<Record<string, string>> | true
  /** PEP 700 size in bytes (JSON upstreams only). */
  readonly size?: number
  /** PEP 700 upload time, `yyyy-mm-ddThh:mm:ss[.ffffff]Z` (JSON upstreams only). */
  readonly uploadTime?: string
}

/** A project detail page (`/simple/<project>/`). */
export interface ProjectPage {
  /** PEP 503 normalized project name. */
  readonly name: string
  /** In upstream order; filenames are unique. */
  readonly files: readonly ProjectFile[]
  /** PEP 700 versions (JSON upstreams only): every version the project has, files or not. */
  readonly versions?: readonly string[]
  /** PyPI's `_last-serial` (JSON meta) or `<!--SERIAL n-->` (HTML), when the upstream sent one. */
  readonly lastSerial?: number
}

/** Why a link of an upstream page was left out of the model. */
export type DropReason =
  'invalid-entry' | 'invalid-filename' | 'invalid-url' | 'invalid-hash' | 'duplicate-filename'

/** A link left out of the model, for the caller to log. `href` is as the upstream wrote it. */
export interface DroppedFile {
  readonly href: string
  readonly filename?: string
  readonly reason: DropReason
}

/** What a page parser needs besides the body. */
export interface ParsePageOptions {
  /** The project the page was asked for (any spelling). */
  readonly project: string
  /** The URL the page was fetched from (after redirects); relative links resolve against it. */
  readonly pageUrl: string
}

/** What a page parser returns: the model, and what it left out and why. */
export interface ParsedProjectPage {
  readonly page: ProjectPage
  readonly dropped: readonly DroppedFile[]
  /** The PEP 629 version the upstream declared (`1.1`), undefined when it declared none. */
  readonly apiVersion: string | undefined
}

/** True for a value of the ProjectPage shape, e.g. one read back from the metadata store. */
export function isProjectPage(value: unknown): value is ProjectPage {
  if (!isRecord(value) || typeof value.name !== 'string' || !Array.isArray(value.files)) {
    return false
  }
  if (value.versions !== undefined && !isStringArray(value.versions)) return false
  if (value.lastSerial !== undefined && typeof value.lastSerial !== 'number') return false
  return value.files.every(isProjectFile)
}

function isProjectFile(value: unknown): value is ProjectFile {
  if (!isRecord(value)) return false
  const { filename, url, hashes, requiresPython, yanked, coreMetadata, size, uploadTime } = value
  return (
    typeof filename === 'string' &&
    typeof url === 'string' &&
    isStringRecord(hashes) &&
    optional(requiresPython, (v) => typeof v === 'string') &&
    optional(yanked, (v) => v === true || (typeof v === 'string' && v !== '')) &&
    optional(coreMetadata, (v) => v === true || isStringRecord(v)) &&
    optional(size, (v) => typeof v === 'number') &&
    optional(uploadTime, (v) => typeof v === 'string')
  )
}

function optional(value: unknown, check: (v: unknown) => boolean): boolean {
  return value === undefined || check(value)
}

/** A JSON object (not null, not an array). */
export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function isStringRecord(value: unknown): value is Record<string, string> {
  return isRecord(value) && Object.values(value).every((v) => typeof v === 'string')
}

function isStringArray(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((v) => typeof v === 'string')
}

/**
 * Given by the routes to the renderers: the URL a client fetches a file from
 * (pullthrough's own, absolute or relative to the page), without a fragment.
 */
export type FileUrl = (file: ProjectFile) => string
