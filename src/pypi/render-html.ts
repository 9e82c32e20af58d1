/**
 * Renders a project page as PEP 503 HTML (`text/html` or
 * `application/vnd.pypi.simple.v1+html`), shaped like pypi.org's, with every
 * file URL pointing at pullthrough. Every attribute value and text is escaped:
 * filenames, yank reasons and Requires-Python come from upstreams.
 */
import { escapeHtml } from '../escape-html.ts'
import { formatHashPair } from './hashes.ts'
import type { FileUrl, ProjectFile, ProjectPage } from './model.ts'
import { HTML_REPOSITORY_VERSION } from './repository-version.ts'

/** The HTML body of a project page. */
export function renderProjectHtml(page: ProjectPage, fileUrl: FileUrl): string {
  const name = escapeHtml(page.name)
  const lines = [
    '<!DOCTYPE html>',
    '<html>',
    '  <head>',
    `    <meta name="pypi:repository-version" content="${HTML_REPOSITORY_VERSION}">`,
    `    <title>Links for ${name}</title>`,
    '  </head>',
    '  <body>',
    `    <h1>Links for ${name}</h1>`,
    ...page.files.map((file) => `    ${anchor(file, fileUrl)}<br />`),
    '  </body>',
    '</html>',
    ...(page.lastSerial === undefined ? [] : [`<!--SERIAL ${page.lastSerial}-->`]),
  ]
  return lines.join('\n') + '\n'
}

/** One file's link: the hash in the fragment (PEP 503), then the data attributes. */
function anchor(file: ProjectFile, fileUrl: FileUrl): string {
  const hash = formatHashPair(file.hashes)
  const href = hash === undefined ? fileUrl(file) : `${fileUrl(file)}#${hash}`
  const attributes: [string, string][] = [['href', href], ...dataAttributes(file)]
  const rendered = attributes.map(([key, value]) => `${key}="${escapeHtml(value)}"`)
  return `<a ${rendered.join(' ')}>${escapeHtml(file.filename)}</a>`
}

function dataAttributes(file: ProjectFile): [string, string][] {
  const attributes: [string, string][] = []
  if (file.requiresPython !== undefined) {
    attributes.push(['data-requires-python', file.requiresPython])
  }
  // PEP 592: an empty value is "yanked without a reason".
  if (file.yanked !== undefined)
    attributes.push(['data-yanked', file.yanked === true ? '' : file.yanked])
  if (file.coreMetadata !== undefined) {
    const value =
      file.coreMetadata === true ? 'true' : (formatHashPair(file.coreMetadata) ?? 'true')
    // PEP 714 allows the old name too in HTML (same value), for pip before 23.2.
    attributes.push(['data-core-metadata', value], ['data-dist-info-metadata', value])
  }
  return attributes
}
