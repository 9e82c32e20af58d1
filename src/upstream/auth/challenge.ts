/**
 * WWW-Authenticate parsing (RFC 9110 §11.6.1) for the two schemes registries and
 * indexes use: Bearer (the Docker registry token flow:
 * `Bearer realm="https://auth.example/token",service="registry.example",scope="repository:x:pull"`)
 * and Basic.
 */

export interface Challenge {
  /** Lowercased scheme: 'bearer', 'basic', ... */
  readonly scheme: string
  readonly params: Readonly<Record<string, string>>
}

// One auth-param: token = ( token / quoted-string ), with backslash escapes in quoted strings.
const PARAM_RE =
  /\s*([!#$%&'*+.^_`|~0-9A-Za-z-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*(?:,|$)/y
const SCHEME_RE = /\s*([!#$%&'*+.^_`|~0-9A-Za-z-]+)(?:\s+|$)/y

/** Parses every challenge in a WWW-Authenticate header value (or several values). */
export function parseChallenges(header: string | string[] | undefined): Challenge[] {
  if (header === undefined) return []
  const values = Array.isArray(header) ? header : [header]
  return values.flatMap(parseOne)
}

function parseOne(value: string): Challenge[] {
  const challenges: Challenge[] = []
  let pos = 0
  while (pos < value.length) {
    SCHEME_RE.lastIndex = pos
    const scheme = SCHEME_RE.exec(value)
    if (!scheme?.[1]) break
    pos = SCHEME_RE.lastIndex
    const params: Record<string, string> = {}
    for (;;) {
      PARAM_RE.lastIndex = pos
      const param = PARAM_RE.exec(value)
      if (!param?.[1]) break
      params[param[1].toLowerCase()] =
        param[2] !== undefined ? param[2].replace(/\\(.)/g, '$1') : (param[3] ?? '')
      pos = PARAM_RE.lastIndex
    }
    challenges.push({ scheme: scheme[1].toLowerCase(), params })
    // Skip a separating comma between challenges without params.
    while (value[pos] === ',' || value[pos] === ' ') pos++
  }
  return challenges
}

/** The Bearer challenge with a realm, if the header carries one. */
export function bearerChallenge(header: string | string[] | undefined): Challenge | undefined {
  return parseChallenges(header).find((c) => c.scheme === 'bearer' && c.params.realm !== undefined)
}
