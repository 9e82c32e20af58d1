/**
 * PEP 691 JSON project pages (`application/vnd.pypi.simple.v1+json`) into the
 * model, with the PEP 700 fields (`versions`, `size`, `upload-time`) and PEP
 * 714's renamed `core-metadata`. Unknown keys are ignored (PEP 691 requires
 * it); a file entry that cannot be used is dropped with a reason; a page that
 * cannot be used at all throws ProjectPageInvalidError.
 */
import { ProjectPageInvalidError } from './errors.ts'
import { normalizeHashes, type Hashes } from './hashes.ts'
import {
  isRecord,
  type ParsedProjectPage,
  type ParsePageOptions,
  type ProjectFile,
} from './model.ts'
import { normalizeProjectName } from './names.ts'
import { checkLink, collectFiles, type CheckedLink } from './page-files.ts'
import { isSupportedApiVersion } from './repository-version.ts'

/** PEP 700: `yyyy-mm-ddThh:mm:ss[.ffffff]Z`, UTC. */
const UPLOAD_TIME_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?Z$/

/** Parses a PEP 691 project page body. */
export function parseProjectJson(body: string, options: ParsePageOptions): ParsedProjectPage {
  const name = normalizeProjectName(options.project)
  const { doc, apiVersion } = readDocument(body, name)
  if (!Array.isArray(doc.files)) throw new ProjectPageInvalidError(name, 'files is not a list')
  const links = doc.files.map((entry: unknown) => readFile(entry, options.pageUrl))
  const { files, dropped } = collectFiles(links)
  const versions = readVersions(doc.versions)
  const lastSerial = readSerial(isRecord(doc.meta) ? doc.meta['_last-serial'] : undefined)
  const page = {
    name,
    files,
    ...(versions === undefined ? {} : { versions }),
    ...(lastSerial === undefined ? {} : { lastSerial }),
  }
  return { page, dropped, apiVersion }
}

/** The top-level object, checked: PEP 629 version 1.x, and the project that was asked for. */
function readDocument(
  body: string,
  name: string,
): { doc: Record<string, unknown>; apiVersion: string } {
  const invalid = (reason: string, cause?: unknown): ProjectPageInvalidError =>
    new ProjectPageInvalidError(name, reason, { cause })
  let doc: unknown
  try {
    doc = JSON.parse(body)
  } catch (error) {
    throw invalid('not JSON', error)
  }
  if (!isRecord(doc)) throw invalid('not a JSON object')
  const apiVersion = isRecord(doc.meta) ? doc.meta['api-version'] : undefined
  if (typeof apiVersion !== 'string') throw invalid('no meta.api-version')
  if (!isSupportedApiVersion(apiVersion)) throw invalid(`unsupported api-version ${apiVersion}`)
  // PEP 691 requires `name`; a page without one is taken as the project asked for.
  const named = doc.name
  if (named !== undefined && (typeof named !== 'string' || normalizeProjectName(named) !== name)) {
    throw invalid('the page names another project')
  }
  return { doc, apiVersion }
}

function readFile(entry: unknown, pageUrl: string): CheckedLink {
  if (!isRecord(entry) || typeof entry.filename !== 'string' || typeof entry.url !== 'string') {
    const href = isRecord(entry) && typeof entry.url === 'string' ? entry.url : ''
    return { dropped: { href, reason: 'invalid-entry' } }
  }
  const { filename, url: href } = entry
  const hashes = entry.hashes === undefined ? {} : readHashes(entry.hashes)
  if (hashes === undefined) return { dropped: { href, filename, reason: 'invalid-hash' } }
  const file: Omit<ProjectFile, 'url'> = {
    filename,
    hashes,
    ...optionalFields(entry),
  }
  return checkLink({ href, file }, pageUrl)
}

/** The optional file fields, each kept only when well-formed. */
function optionalFields(entry: Readonly<Record<string, unknown>>): Partial<ProjectFile> {
  const requiresPython = entry['requires-python']
  const yanked = entry.yanked
  const coreMetadata = readCoreMetadata(entry)
  const size = entry.size
  const uploadTime = entry['upload-time']
  return {
    ...(typeof requiresPython === 'string' && requiresPython.trim() !== ''
      ? { requiresPython: requiresPython.trim() }
      : {}),
    // PEP 691: a truthy `yanked` means yanked; "" and false do not.
    ...(yanked === true || (typeof yanked === 'string' && yanked !== '') ? { yanked } : {}),
    ...(coreMetadata === undefined ? {} : { coreMetadata }),
    ...(typeof size === 'number' && Number.isSafeInteger(size) && size >= 0 ? { size } : {}),
    ...(typeof uploadTime === 'string' && UPLOAD_TIME_RE.test(uploadTime) ? { uploadTime } : {}),
  }
}

function readHashes(value: unknown): Hashes | undefined {
  return isRecord(value) ? normalizeHashes(value) : undefined
}

/**
 * PEP 714: `core-metadata` when present, else the PEP 691 `dist-info-metadata`,
 * else `data-dist-info-metadata` (the misnamed key PyPI served before PEP 714).
 * `true` or a non-empty hashes object means the metadata file exists; a
 * malformed value is read as "not advertised", so clients fetch the file itself.
 */
function readCoreMetadata(entry: Readonly<Record<string, unknown>>): Hashes | true | undefined {
  const key = ['core-metadata', 'dist-info-metadata', 'data-dist-info-metadata'].find((k) =>
    Object.hasOwn(entry, k),
  )
  const value = key === undefined ? undefined : entry[key]
  if (value === true) return true
  const hashes = readHashes(value)
  return hashes === undefined || Object.keys(hashes).length === 0 ? undefined : hashes
}

function readVersions(value: unknown): string[] | undefined {
  if (!Array.isArray(value)) return undefined
  const strings = value.filter((v): v is string => typeof v === 'string' && v !== '')
  return [...new Set(strings)]
}

function readSerial(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0 ? value : undefined
}
