/**
 * The checks every upstream page format shares once a link is read: a safe
 * distribution filename, a URL that resolves against the page, and one file
 * per filename (routes serve files by name).
 */
import type { DroppedFile, ProjectFile } from './model.ts'
import { isDistFilename } from './names.ts'

/** A link as a parser read it: the raw href and every field but the resolved URL. */
export interface FileLink {
  readonly href: string
  readonly file: Omit<ProjectFile, 'url'>
}

export type CheckedLink =
  { readonly href: string; readonly file: ProjectFile } | { readonly dropped: DroppedFile }

/** Resolves an href against the page (or `<base>`) URL; the fragment is removed. */
export function resolveFileUrl(href: string, base: string): URL | undefined {
  if (!URL.canParse(href, base)) return undefined
  const url = new URL(href, base)
  url.hash = ''
  return url
}

/** Checks one link's filename and URL. */
export function checkLink({ href, file }: FileLink, base: string): CheckedLink {
  const { filename } = file
  if (!isDistFilename(filename)) return { dropped: { href, filename, reason: 'invalid-filename' } }
  const url = resolveFileUrl(href, base)
  if (url === undefined) return { dropped: { href, filename, reason: 'invalid-url' } }
  return { href, file: { ...file, url: url.href } }
}

/** Splits checked links into files and drops; a filename seen before is dropped as a duplicate. */
export function collectFiles(links: readonly CheckedLink[]): {
  files: ProjectFile[]
  dropped: DroppedFile[]
} {
  const files: ProjectFile[] = []
  const dropped: DroppedFile[] = []
  const seen = new Set<string>()
  for (const link of links) {
    if ('dropped' in link) {
      dropped.push(link.dropped)
    } else if (seen.has(link.file.filename)) {
      dropped.push({ href: link.href, filename: link.file.filename, reason: 'duplicate-filename' })
    } else {
      seen.add(link.file.filename)
      files.push(link.file)
    }
  }
  return { files, dropped }
}
