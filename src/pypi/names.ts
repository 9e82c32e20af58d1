/**
 * Project names and distribution filenames of the simple API. Names are
 * compared and routed in their PEP 503 normalized form; filenames are checked
 * before they reach a URL, a log line or the metadata store, since upstream
 * pages are untrusted input.
 */

/** Longest project name accepted (PEP 508 sets no bound; PyPI's longest are far below this). */
export const MAX_PROJECT_NAME_LENGTH = 200

/** Longest distribution filename accepted (the usual filesystem limit for one path segment). */
export const MAX_FILENAME_LENGTH = 255

/** PEP 658: the core metadata of `<file>` is served at `<file>.metadata`. */
export const METADATA_SUFFIX = '.metadata'

/** PEP 508 names: ASCII letters and digits, with '.', '_' and '-' only inside. */
const PROJECT_NAME_RE = /^(?:[a-z0-9]|[a-z0-9][a-z0-9._-]*[a-z0-9])$/i

/**
 * Archive extensions a distribution may have: wheels, eggs and the sdist
 * formats pip can unpack. Anything else (.exe, .msi, .html ...) is refused, so
 * a hostile upstream cannot have pullthrough serve arbitrary documents.
 */
const DIST_EXTENSIONS = [
  '.whl',
  '.egg',
  '.tar.gz',
  '.tgz',
  '.zip',
  '.tar.bz2',
  '.tbz',
  '.tar.xz',
  '.txz',
  '.tar',
] as const

/** Control characters and whitespace: never in a distribution filename (wheel and sdist names forbid them). */
// eslint-disable-next-line no-control-regex -- control characters are exactly what is refused
const UNSAFE_CHAR_RE = /[\u0000-\u001f\u007f\s]/

/** PEP 503 normalization: lowercase, and every run of '-', '_' and '.' becomes one '-'. */
export function normalizeProjectName(name: string): string {
  return name.replace(/[-_.]+/g, '-').toLowerCase()
}

/** True for a valid PEP 508 project name of bounded length (in any case or spelling). */
export function isProjectName(name: string): boolean {
  return name.length <= MAX_PROJECT_NAME_LENGTH && PROJECT_NAME_RE.test(name)
}

/** The archive extension of a filename, lowercase, or undefined (no known one is a suffix of another). */
export function distExtension(filename: string): string | undefined {
  const lower = filename.toLowerCase()
  return DIST_EXTENSIONS.find((ext) => lower.endsWith(ext))
}

/**
 * True for a filename that can name a distribution: one safe path segment
 * (no '/', '\', NUL, other control characters or whitespace, no leading '.',
 * no '..'), bounded length, a known archive extension after a non-empty stem.
 * A `.metadata` name (PEP 658) is checked by stripping the suffix first.
 */
export function isDistFilename(filename: string): boolean {
  if (filename.length === 0 || filename.length > MAX_FILENAME_LENGTH) return false
  if (filename.startsWith('.') || filename.includes('..') || /[/\\]/.test(filename)) return false
  if (UNSAFE_CHAR_RE.test(filename)) return false
  const ext = distExtension(filename)
  return ext !== undefined && filename.length > ext.length
}

export type DistKind = 'wheel' | 'egg' | 'sdist'

/** A distribution filename split into its parts. */
export interface DistFilename {
  readonly kind: DistKind
  /** The project, PEP 503 normalized. */
  readonly project: string
  readonly version: string
}

/**
 * Splits a distribution filename into project and version. Wheels and eggs
 * escape '-' in both parts, so the first two '-' fields are name and version.
 * An sdist name may contain '-' (legacy `python-dateutil-2.8.2.tar.gz`), so
 * when the project is known the split is the one whose prefix normalizes to
 * it (as pip does); otherwise the version starts at the first '-<digit>'.
 */
export function parseDistFilename(filename: string, project?: string): DistFilename | undefined {
  if (!isDistFilename(filename)) return undefined
  const ext = distExtension(filename) ?? ''
  const stem = filename.slice(0, filename.length - ext.length)
  if (ext === '.whl' || ext === '.egg') {
    const [name = '', version = ''] = stem.split('-')
    const kind = ext === '.whl' ? 'wheel' : 'egg'
    return splitResult(kind, name, version, project)
  }
  const at = sdistVersionSeparator(stem, project)
  if (at === undefined) return undefined
  return splitResult('sdist', stem.slice(0, at), stem.slice(at + 1), project)
}

function splitResult(
  kind: DistKind,
  name: string,
  version: string,
  project: string | undefined,
): DistFilename | undefined {
  if (name === '' || version === '') return undefined
  const normalized = normalizeProjectName(name)
  if (project !== undefined && normalized !== normalizeProjectName(project)) return undefined
  return { kind, project: normalized, version }
}

/** Index of the '-' between name and version in an sdist stem. */
function sdistVersionSeparator(stem: string, project: string | undefined): number | undefined {
  const dashes = [...stem.matchAll(/-/g)].map((m) => m.index)
  if (project === undefined) return dashes.find((i) => /\d/.test(stem.charAt(i + 1)))
  const wanted = normalizeProjectName(project)
  return dashes.find((i) => normalizeProjectName(stem.slice(0, i)) === wanted)
}
