/**
 * Renders a project page as PEP 691 JSON (`application/vnd.pypi.simple.v1+json`),
 * with every file URL pointing at pullthrough. Deterministic: keys in a fixed
 * order, files in model order, hashes sorted.
 */
import { sortedHashes, type Hashes } from './hashes.ts'
import type { FileUrl, ProjectFile, ProjectPage } from './model.ts'

interface JsonFile {
  filename: string
  url: string
  hashes: Readonly<Record<string, string>>
  'requires-python'?: string
  yanked?: string | true
  'core-metadata'?: Readonly<Record<string, string>> | true
  size?: number
  'upload-time'?: string
}

/**
 * The `api-version` of a page: PEP 700 makes `versions` and every file's
 * `size` mandatory from 1.1 on, so a page without them (one read from an HTML
 * upstream) is declared 1.0, which has neither.
 */
export function jsonApiVersion(page: ProjectPage): '1.0' | '1.1' {
  const complete = page.versions !== undefined && page.files.every((f) => f.size !== undefined)
  return complete ? '1.1' : '1.0'
}

/** The JSON body of a project page. */
export function renderProjectJson(page: ProjectPage, fileUrl: FileUrl): string {
  const apiVersion = jsonApiVersion(page)
  const doc = {
    meta: {
      'api-version': apiVersion,
      ...(page.lastSerial === undefined ? {} : { '_last-serial': page.lastSerial }),
    },
    name: page.name,
    files: page.files.map((file) => jsonFile(file, fileUrl)),
    ...(apiVersion === '1.1' ? { versions: page.versions } : {}),
  }
  return escapeMarkup(JSON.stringify(doc))
}

/**
 * PEP 714: only `core-metadata`, never the old `dist-info-metadata` key, in
 * JSON: pip 22.3 to 23.1 fail hard on any use of it there.
 */
function jsonFile(file: ProjectFile, fileUrl: FileUrl): JsonFile {
  return {
    filename: file.filename,
    url: fileUrl(file),
    hashes: sorted(file.hashes),
    ...(file.requiresPython === undefined ? {} : { 'requires-python': file.requiresPython }),
    // PEP 691 reads an empty reason as "not yanked"; the model means "yanked" by it.
    ...(file.yanked === undefined ? {} : { yanked: file.yanked === '' ? true : file.yanked }),
    ...(file.coreMetadata === undefined
      ? {}
      : { 'core-metadata': file.coreMetadata === true ? true : sorted(file.coreMetadata) }),
    ...(file.size === undefined ? {} : { size: file.size }),
    ...(file.uploadTime === undefined ? {} : { 'upload-time': file.uploadTime }),
  }
}

function sorted(hashes: Hashes): Hashes {
  return sortedHashes(Object.entries(hashes))
}

/**
 * `<`, `>` and `&` as JSON escapes: the same JSON, but a browser that sniffs
 * the body as HTML finds no markup in a hostile filename or yank reason.
 */
function escapeMarkup(json: string): string {
  return json.replace(/[<>&]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)
}
