/**
 * The project list page of a PEP 503 index (`/simple/`), streamed: upstream
 * HTML in, one project name per line out. Only names survive (the link text,
 * else the link's last path segment, valid PEP 508 names only), so no
 * upstream markup reaches a client or the disk. Memory stays bounded however
 * large the page: htmlparser2 holds only the token it is in, and a token that
 * runs on past MAX_HTML_TOKEN_CHARS (an endless attribute, comment or tag)
 * fails the page.
 */
import { Transform } from 'node:stream'
import { StringDecoder } from 'node:string_decoder'
import { Parser } from 'htmlparser2'
import { UpstreamDocumentInvalidError } from './errors.ts'
import { MAX_PROJECT_NAME_LENGTH, isProjectName } from './names.ts'

/** Characters of markup the parser may hold without completing a tag, text run or comment. */
export const MAX_HTML_TOKEN_CHARS = 64 * 1024

/** An HTML project list to `name\n` lines; fails with UpstreamDocumentInvalidError on runaway markup. */
export function projectNamesFromHtml(): Transform {
  const decoder = new StringDecoder('utf8')
  const names: string[] = []
  let anchor: { href: string | undefined; text: string } | undefined
  /** Characters written to the parser, and where its last completed token ended. */
  let written = 0
  let settled = 0
  const parser = new Parser({
    onopentag(tag, attribs) {
      settled = parser.endIndex
      if (tag === 'a') anchor = { href: attribs.href, text: '' }
    },
    ontext(text) {
      settled = parser.endIndex
      // Longer than any project name is not a project name: stop collecting.
      if (anchor && anchor.text.length <= MAX_PROJECT_NAME_LENGTH)
        anchor.text += text.slice(0, MAX_PROJECT_NAME_LENGTH + 1 - anchor.text.length)
    },
    onclosetag(tag) {
      settled = parser.endIndex
      if (tag !== 'a' || !anchor) return
      const name = projectName(anchor.text, anchor.href)
      if (name !== undefined) names.push(name)
      anchor = undefined
    },
    oncomment() {
      settled = parser.endIndex
    },
    onprocessinginstruction() {
      settled = parser.endIndex
    },
  })
  const lines = (): string | undefined =>
    names.length === 0 ? undefined : `${names.splice(0).join('\n')}\n`
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      const text = decoder.write(chunk)
      parser.write(text)
      written += text.length
      if (written - settled > MAX_HTML_TOKEN_CHARS) {
        callback(
          new UpstreamDocumentInvalidError(
            'project list',
            `markup runs on for over ${MAX_HTML_TOKEN_CHARS} characters`,
          ),
        )
        return
      }
      callback(null, lines())
    },
    flush(callback) {
      parser.write(decoder.end())
      parser.end()
      callback(null, lines())
    },
  })
}

/** The project a list link names: its text, else its href's last path segment. */
function projectName(text: string, href: string | undefined): string | undefined {
  const trimmed = text.trim()
  if (isProjectName(trimmed)) return trimmed
  const segment = href?.split(/[?#]/)[0]?.split('/').filter(Boolean).at(-1) ?? ''
  let decoded: string
  try {
    decoded = decodeURIComponent(segment)
  } catch {
    return undefined
  }
  return isProjectName(decoded) ? decoded : undefined
}
