/**
 * Property-based tests (fast-check) of the parsers that read client and
 * upstream input (credentials: credentials.test.ts). Whatever the input: no crash (only the parser's own typed
 * error, where it has one), results within their stated shapes, digests that
 * can only ever name a path inside the store, and bounded time per input.
 */
import { join, relative } from 'node:path'
import fc from 'fast-check'
import t from 'tap'
import { only, RUNS, text, timed } from '../helpers/fuzz.ts'
import { parseRange } from '../../src/docker/blobs.ts'
import { OciError } from '../../src/docker/errors.ts'
import { parseAccept as parseDockerAccept } from '../../src/docker/media-types.ts'
import { MAX_LINK_HEADER_CHARS, nextLinkTarget } from '../../src/docker/remote.ts'
import { isRepositoryName, parseV2Path } from '../../src/docker/names.ts'
import { ProjectPageInvalidError } from '../../src/pypi/errors.ts'
import {
  isDistFilename,
  isProjectName,
  normalizeProjectName,
  parseDistFilename,
} from '../../src/pypi/names.ts'
import { parseAccept as parsePypiAccept } from '../../src/pypi/negotiate.ts'
import { parseProjectHtml } from '../../src/pypi/parse-html.ts'
import { parseProjectJson } from '../../src/pypi/parse-json.ts'
import { digestHex, parseDigest } from '../../src/storage/digest.ts'
import { InvalidDigestError } from '../../src/storage/errors.ts'
import { parseChallenges } from '../../src/upstream/auth/challenge.ts'
import { MAX_RETRY_AFTER_MS, parseRetryAfterMs } from '../../src/upstream/retry.ts'

t.test('WWW-Authenticate: any header parses to challenges with string params', async () => {
  fc.assert(
    fc.property(fc.oneof(text, fc.array(text, { maxLength: 4 })), (header) => {
      for (const challenge of timed(() => parseChallenges(header))) {
        if (
          typeof challenge.scheme !== 'string' ||
          challenge.scheme !== challenge.scheme.toLowerCase()
        )
          return false
        if (!Object.values(challenge.params).every((v) => typeof v === 'string')) return false
      }
      return true
    }),
    RUNS,
  )
})

t.test('Accept (registry and index): q-values stay within [0, 1]', async () => {
  fc.assert(
    fc.property(text, (header) =>
      [...timed(() => parseDockerAccept(header)), ...timed(() => parsePypiAccept(header))].every(
        (range) => typeof range.type === 'string' && range.q >= 0 && range.q <= 1,
      ),
    ),
    RUNS,
  )
})

t.test('Range: one valid range or OciError, never a start past the end', async () => {
  fc.assert(
    fc.property(
      fc.oneof(
        text,
        fc.tuple(fc.nat(), fc.nat()).map(([a, b]) => `bytes=${a}-${b}`),
      ),
      (header) => {
        const range = only(() => parseRange(header), OciError)
        return (
          range === undefined ||
          (range.start >= 0 && (range.end === undefined || range.end >= range.start))
        )
      },
    ),
    RUNS,
  )
})

t.test('Retry-After: never negative, never past the cap', async () => {
  fc.assert(
    fc.property(text, fc.integer({ min: 0, max: 4e12 }), (header, now) => {
      const ms = timed(() => parseRetryAfterMs(header, now))
      return ms === undefined || (ms >= 0 && ms <= MAX_RETRY_AFTER_MS)
    }),
    RUNS,
  )
})

t.test('digests: only sha256 and 64 hex become a path, and it stays in the store', async () => {
  const root = '/var/lib/pullthrough/blobs/sha256'
  fc.assert(
    fc.property(fc.oneof(text, fc.stringMatching(/^sha256:[a-f0-9]{64}$/)), (input) => {
      const digest = only(() => parseDigest(input), InvalidDigestError)
      if (digest === undefined) return true
      const hex = digestHex(digest)
      const path = join(root, hex.slice(0, 2), hex)
      return !relative(root, path).startsWith('..') && /^[a-f0-9]{64}$/.test(hex)
    }),
    RUNS,
  )
})

t.test('registry paths: a name that comes out is checked, never a path trick', async () => {
  const segment = fc.oneof(
    text,
    fc.constantFrom('manifests', 'blobs', 'tags', 'list', 'referrers', '..', '.', ''),
  )
  fc.assert(
    fc.property(fc.array(segment, { maxLength: 8 }), (segments) => {
      const parsed = timed(() => parseV2Path(segments.join('/')))
      if (!parsed || !isRepositoryName(parsed.name)) return true
      return !parsed.name.split('/').some((part) => part === '..' || part === '.' || part === '')
    }),
    RUNS,
  )
})

t.test('PyPI names: normalizing is idempotent; file names parse or are refused', async () => {
  fc.assert(
    fc.property(text, (name) => {
      const normal = timed(() => normalizeProjectName(name))
      if (normalizeProjectName(normal) !== normal) return false
      if (timed(() => isProjectName(name)) && !/^[a-z0-9]+(-[a-z0-9]+)*$/.test(normal)) return false
      const dist = timed(() => parseDistFilename(name))
      return dist === undefined || timed(() => isDistFilename(name))
    }),
    RUNS,
  )
})

const pageOptions = { project: 'fuzz', pageUrl: 'https://pypi.example/simple/fuzz/' }

// Links of other schemes stay URLs here; the host allowlist (upstream/file-hosts.ts) drops them.
t.test('PEP 503 HTML pages: any body gives files with valid names and absolute URLs', async () => {
  const anchors = fc
    .array(
      fc.record({
        href: text,
        name: fc.oneof(text, fc.constant('fuzz-1.0-py3-none-any.whl')),
        attrs: text,
      }),
      { maxLength: 20 },
    )
    .map((links) =>
      links
        .map((l) => `<a href="${l.href}#sha256=${'a'.repeat(64)}" ${l.attrs}>${l.name}</a>`)
        .join('\n'),
    )
  fc.assert(
    fc.property(fc.oneof(text, anchors), (body) => {
      const parsed = only(() => parseProjectHtml(body, pageOptions), ProjectPageInvalidError)
      return (
        parsed === undefined ||
        parsed.page.files.every((f) => isDistFilename(f.filename) && URL.canParse(f.url))
      )
    }),
    RUNS,
  )
})

t.test(
  'PEP 691 JSON pages: any body gives files with valid names, or a typed refusal',
  async () => {
    const json = fc
      .record({
        meta: fc.record({ 'api-version': fc.oneof(fc.constant('1.1'), text) }),
        name: fc.oneof(fc.constant('fuzz'), text),
        files: fc.array(
          fc.dictionary(
            fc.constantFrom(
              'filename',
              'url',
              'hashes',
              'yanked',
              'size',
              'requires-python',
              'core-metadata',
            ),
            fc.jsonValue(),
          ),
          { maxLength: 10 },
        ),
      })
      .map((doc) => JSON.stringify(doc))
    fc.assert(
      fc.property(fc.oneof(text, json), (body) => {
        const parsed = only(() => parseProjectJson(body, pageOptions), ProjectPageInvalidError)
        return (
          parsed === undefined ||
          parsed.page.files.every((f) => isDistFilename(f.filename) && URL.canParse(f.url))
        )
      }),
      RUNS,
    )
  },
)

t.test('Link headers: the next target is a piece of the header between < and >', async (t) => {
  const links = fc
    .array(
      fc.oneof(
        text,
        fc.constantFrom(
          '<',
          '>',
          ', ',
          '; rel="next"',
          '; rel=next',
          '; REL="prev next"',
          '/v2/x?last=a',
        ),
      ),
      { maxLength: 12 },
    )
    .map((parts) => parts.join(''))
  fc.assert(
    fc.property(fc.oneof(text, links), (header) => {
      const target = timed(() => nextLinkTarget(header))
      return (
        target === undefined ||
        (header.includes(`<${target}>`) && !target.includes('>') && /rel/i.test(header))
      )
    }),
    RUNS,
  )
  // Long headers are ignored without being read.
  t.equal(nextLinkTarget(`<${'a'.repeat(MAX_LINK_HEADER_CHARS)}>; rel="next"`), undefined)
})
