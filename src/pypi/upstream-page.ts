/**
 * An upstream's project page, whatever its format, to the neutral model, with
 * the file-host allowlist applied: a file link must point at the upstream's
 * own origin or at an origin in the index's `fileHosts`. Other links are left
 * out of the served page (logged, counted) and can never be fetched.
 */
import { logUrl, type Logger } from '../observability/logger.ts'
import type { ProjectFile, ProjectPage } from './model.ts'
import { SIMPLE_MEDIA_TYPES } from './negotiate.ts'
import { parseProjectHtml } from './parse-html.ts'
import { parseProjectJson } from './parse-json.ts'

/** What pullthrough asks upstreams for: PEP 691 JSON first, HTML from those without it. */
export const UPSTREAM_PAGE_ACCEPT = `${SIMPLE_MEDIA_TYPES.json}, ${SIMPLE_MEDIA_TYPES.html};q=0.2, ${SIMPLE_MEDIA_TYPES.legacyHtml};q=0.1`

export interface UpstreamPageInput {
  readonly body: Buffer
  readonly contentType: string | undefined
  /** The URL the page came from, after redirects. */
  readonly url: string
}

export interface PageContext {
  readonly index: string
  readonly project: string
  /** True when files may be fetched from this URL. */
  readonly allows: (url: string) => boolean
  readonly logger: Logger
  /** Counts links left out, by reason. */
  readonly onDropped: (reason: string, count: number) => void
}

export function parseUpstreamPage(input: UpstreamPageInput, ctx: PageContext): ProjectPage {
  const body = input.body.toString('utf8')
  const options = { project: ctx.project, pageUrl: input.url }
  const json = (input.contentType ?? '').toLowerCase().includes('json')
  const parsed = json ? parseProjectJson(body, options) : parseProjectHtml(body, options)
  const allowed: ProjectFile[] = []
  const disallowed: string[] = []
  for (const file of parsed.page.files) {
    if (ctx.allows(file.url)) allowed.push(file)
    else disallowed.push(file.url)
  }
  if (parsed.dropped.length > 0) {
    ctx.logger.warn(
      {
        index: ctx.index,
        project: ctx.project,
        dropped: parsed.dropped
          .slice(0, 10)
          .map((d) => ({ ...d, href: logUrl(d.href, input.url) })),
      },
      'upstream page links left out: invalid',
    )
    for (const d of parsed.dropped) ctx.onDropped(d.reason, 1)
  }
  if (disallowed.length > 0) {
    ctx.logger.warn(
      {
        index: ctx.index,
        project: ctx.project,
        // Origin and path only: a link's query may be a presigned signature.
        urls: disallowed.slice(0, 10).map((url) => logUrl(url)),
        count: disallowed.length,
      },
      'upstream page links left out: host not allowed (see fileHosts)',
    )
    ctx.onDropped('host-not-allowed', disallowed.length)
  }
  return { ...parsed.page, files: allowed }
}
