/**
 * Renders the project list (`/simple/`) from `name\n` lines as a stream: PEP
 * 503 HTML with relative links (`<normalized>/`, which resolve under whichever
 * index URL the client used) or PEP 691 JSON. Names were checked as PEP 508
 * names when the upstream list was read; they are escaped anyway.
 */
import { Transform } from 'node:stream'
import { UpstreamDocumentInvalidError } from './errors.ts'
import { MAX_PROJECT_NAME_LENGTH, isProjectName, normalizeProjectName } from './names.ts'
import type { SimpleFormat } from './negotiate.ts'
import { escapeHtml } from '../escape-html.ts'
import { HTML_REPOSITORY_VERSION } from './repository-version.ts'

/** The PEP 691 version the JSON list declares (the list has nothing later versions changed). */
const JSON_LIST_API_VERSION = '1.0'

const HTML_HEAD = [
  '<!DOCTYPE html>',
  '<html>',
  '  <head>',
  `    <meta name="pypi:repository-version" content="${HTML_REPOSITORY_VERSION}">`,
  '    <title>Simple index</title>',
  '  </head>',
  '  <body>',
  '',
].join('\n')
const HTML_TAIL = '  </body>\n</html>\n'
const JSON_HEAD = `{"meta":{"api-version":"${JSON_LIST_API_VERSION}"},"projects":[`
const JSON_TAIL = ']}\n'

/** `name\n` lines to the list page in `format`. */
export function renderProjectList(format: SimpleFormat): Transform {
  let carry = ''
  let first = true
  const item = (name: string): string => {
    if (format === 'html')
      return `    <a href="${escapeHtml(normalizeProjectName(name))}/">${escapeHtml(name)}</a>\n`
    const entry = `${first ? '' : ','}{"name":${JSON.stringify(name)}}`
    first = false
    return entry
  }
  const render = (names: readonly string[]): string =>
    names
      .filter((name) => isProjectName(name))
      .map(item)
      .join('')
  return new Transform({
    construct(callback) {
      this.push(format === 'html' ? HTML_HEAD : JSON_HEAD)
      callback()
    },
    transform(chunk: Buffer, _encoding, callback) {
      const lines = (carry + chunk.toString('latin1')).split('\n')
      carry = lines.pop() ?? ''
      if (carry.length > MAX_PROJECT_NAME_LENGTH) {
        callback(
          new UpstreamDocumentInvalidError('project list', 'a stored line is not a project name'),
        )
        return
      }
      callback(null, render(lines))
    },
    flush(callback) {
      callback(null, render([carry]) + (format === 'html' ? HTML_TAIL : JSON_TAIL))
    },
  })
}
