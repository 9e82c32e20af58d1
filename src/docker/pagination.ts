/**
 * `n`/`last` pagination of tag lists and the catalog (OCI distribution-spec,
 * "Listing Tags"): results in lexical order, those after `last`, at most `n`,
 * and a `Link: <...>; rel="next"` header when more remain.
 */
import { OciError } from './errors.ts'

/** Largest page a client may ask for (Distribution's catalog limit is 1000 too). */
export const MAX_PAGE_SIZE = 1000

export interface PageQuery {
  readonly n: number | undefined
  readonly last: string | undefined
}

export function parsePageQuery(query: Record<string, unknown>): PageQuery {
  const { n, last } = query
  let size: number | undefined
  if (n !== undefined) {
    if (typeof n !== 'string' || !/^\d{1,6}$/.test(n) || Number(n) > MAX_PAGE_SIZE)
      throw new OciError('PAGINATION_NUMBER_INVALID', { n, max: MAX_PAGE_SIZE })
    size = Number(n)
  }
  if (last !== undefined && typeof last !== 'string')
    throw new OciError('PAGINATION_NUMBER_INVALID', undefined, { message: 'invalid last' })
  return { n: size, last }
}

export interface Page {
  readonly items: string[]
  /** Query string for the next page, when there is one. */
  readonly next: string | undefined
}

/** The page of `all` (any order) that `query` selects. */
export function paginate(all: readonly string[], query: PageQuery): Page {
  const sorted = [...all].sort()
  const { last } = query
  const after = last === undefined ? sorted : sorted.filter((item) => item > last)
  if (query.n === undefined) return { items: after, next: undefined }
  const items = after.slice(0, query.n)
  const lastItem = items.at(-1)
  const more = after.length > items.length && lastItem !== undefined
  return {
    items,
    next: more ? `n=${query.n}&last=${encodeURIComponent(lastItem)}` : undefined,
  }
}

/** The RFC 8288 Link header value for the next page. */
export function nextLink(path: string, next: string): string {
  return `<${path}?${next}>; rel="next"`
}
