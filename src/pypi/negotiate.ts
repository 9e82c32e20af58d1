/**
 * PEP 691 content negotiation for simple API pages. The client's Accept (with
 * q-values) chooses JSON or HTML; `latest` is answered with the concrete v1
 * type, as PEP 691 requires. Ties go to the type the client named over one it
 * only reached by a wildcard; among named types JSON wins (PEP 691 recommends
 * the most featureful format), among wildcard matches HTML wins, so browsers,
 * curl and clients that send no Accept get the `text/html` a plain PEP 503
 * index gives.
 */

export const SIMPLE_MEDIA_TYPES = {
  json: 'application/vnd.pypi.simple.v1+json',
  html: 'application/vnd.pypi.simple.v1+html',
  legacyHtml: 'text/html',
} as const

export type SimpleMediaType = (typeof SIMPLE_MEDIA_TYPES)[keyof typeof SIMPLE_MEDIA_TYPES]
export type SimpleFormat = 'json' | 'html'

/** The representation to answer with; `contentType` goes in the Content-Type header as is. */
export interface Negotiated {
  readonly acceptable: true
  readonly format: SimpleFormat
  readonly contentType: SimpleMediaType
}

/** No representation is acceptable: answer 406 and list `offered`. */
export interface NotAcceptable {
  readonly acceptable: false
  readonly offered: readonly SimpleMediaType[]
}

interface Offer {
  readonly contentType: SimpleMediaType
  readonly format: SimpleFormat
  /** Accept names besides contentType that select this offer exactly. */
  readonly aliases: readonly string[]
}

/** In order of preference among types the client named. */
const OFFERS: readonly Offer[] = [
  {
    contentType: SIMPLE_MEDIA_TYPES.json,
    format: 'json',
    aliases: ['application/vnd.pypi.simple.latest+json'],
  },
  {
    contentType: SIMPLE_MEDIA_TYPES.html,
    format: 'html',
    aliases: ['application/vnd.pypi.simple.latest+html'],
  },
  { contentType: SIMPLE_MEDIA_TYPES.legacyHtml, format: 'html', aliases: [] },
]

/** Preference among offers reached only through `*\/*` or `type/*`. */
const WILDCARD_ORDER: readonly SimpleMediaType[] = [
  SIMPLE_MEDIA_TYPES.legacyHtml,
  SIMPLE_MEDIA_TYPES.html,
  SIMPLE_MEDIA_TYPES.json,
]

/** One media range of an Accept header. */
export interface MediaRange {
  readonly type: string
  readonly q: number
}

/** What an absent or empty Accept means (PEP 691). */
const ANY: readonly MediaRange[] = [{ type: '*/*', q: 1 }]

interface Candidate {
  readonly offer: Offer
  readonly q: number
  readonly named: boolean
}

/**
 * Chooses the representation of a simple API page. `accept` is the Accept
 * header (one string or several lines); absent or empty means `*\/*`.
 * `format` is PEP 691's optional `?format=` URL parameter: a known type there
 * takes precedence, anything else falls back to Accept.
 */
export function negotiateSimple(
  accept: string | readonly string[] | undefined,
  format?: string,
): Negotiated | NotAcceptable {
  if (format !== undefined || typeof accept !== 'string' || accept.length > MEMO_MAX_ACCEPT_CHARS)
    return negotiate(accept, format)
  let answer = memo.get(accept)
  if (answer === undefined) {
    answer = negotiate(accept, undefined)
    if (memo.size >= MEMO_ENTRIES) memo.clear()
    memo.set(accept, answer)
  }
  return answer
}

/**
 * Answers by Accept header: pip, uv and browsers each send one of a handful,
 * and parsing one took a few percent of a warm page GET's CPU. Bounded in
 * entries and in the length of the headers kept.
 */
const memo = new Map<string, Negotiated | NotAcceptable>()
const MEMO_ENTRIES = 256
const MEMO_MAX_ACCEPT_CHARS = 512

function negotiate(
  accept: string | readonly string[] | undefined,
  format: string | undefined,
): Negotiated | NotAcceptable {
  const forced = format === undefined ? undefined : exactOffer(format.trim().toLowerCase())
  if (forced !== undefined) return chosen(forced)
  const ranges = parseAccept(accept)
  const candidates = OFFERS.map((offer) => candidate(offer, ranges.length ? ranges : ANY))
    .filter((c): c is Candidate => c !== undefined && c.q > 0)
    .sort(byPreference)
  const best = candidates[0]
  if (best === undefined) return { acceptable: false, offered: OFFERS.map((o) => o.contentType) }
  return chosen(best.offer)
}

function chosen(offer: Offer): Negotiated {
  return { acceptable: true, format: offer.format, contentType: offer.contentType }
}

function exactOffer(type: string): Offer | undefined {
  return OFFERS.find((offer) => offer.contentType === type || offer.aliases.includes(type))
}

/**
 * The q an offer gets: from the most specific matching range (RFC 9110
 * 12.5.1); the concrete name beats `latest` when a client sends both.
 */
function candidate(offer: Offer, ranges: readonly MediaRange[]): Candidate | undefined {
  const byName = (names: readonly string[]): MediaRange | undefined =>
    names.map((name) => bestRange(ranges, name)).find((r) => r !== undefined)
  const named = byName([offer.contentType, ...offer.aliases])
  if (named !== undefined) return { offer, q: named.q, named: true }
  const major = offer.contentType.split('/')[0] ?? ''
  const wildcard = bestRange(ranges, `${major}/*`) ?? bestRange(ranges, '*/*')
  return wildcard === undefined ? undefined : { offer, q: wildcard.q, named: false }
}

/** The highest q among ranges of exactly this type (a type listed twice keeps its best q). */
function bestRange(ranges: readonly MediaRange[], type: string): MediaRange | undefined {
  return ranges
    .filter((r) => r.type === type)
    .reduce<MediaRange | undefined>(
      (best, r) => (best === undefined || r.q > best.q ? r : best),
      undefined,
    )
}

function byPreference(a: Candidate, b: Candidate): number {
  if (a.q !== b.q) return b.q - a.q
  if (a.named !== b.named) return a.named ? -1 : 1
  const order = a.named ? OFFERS.map((o) => o.contentType) : WILDCARD_ORDER
  return order.indexOf(a.offer.contentType) - order.indexOf(b.offer.contentType)
}

/** The media ranges of an Accept header: lowercase type, q clamped to [0, 1], other parameters dropped. */
export function parseAccept(header: string | readonly string[] | undefined): MediaRange[] {
  const values = header === undefined ? [] : typeof header === 'string' ? [header] : header
  return values
    .flatMap((value) => value.split(','))
    .map(parseRange)
    .filter((range): range is MediaRange => range !== undefined)
}

function parseRange(part: string): MediaRange | undefined {
  const [type = '', ...params] = part.split(';').map((p) => p.trim())
  if (!/^[^\s/]+\/[^\s/]+$/.test(type)) return undefined
  const qParam = params.find((p) => /^q\s*=/i.test(p))
  const q = qParam === undefined ? 1 : Number(qParam.slice(qParam.indexOf('=') + 1).trim())
  return { type: type.toLowerCase(), q: Number.isFinite(q) ? Math.min(Math.max(q, 0), 1) : 0 }
}
