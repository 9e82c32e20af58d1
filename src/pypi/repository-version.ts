/**
 * PEP 629 repository versions (`Major.Minor`), declared by JSON pages in
 * `meta.api-version` and by HTML pages in `<meta name="pypi:repository-version">`.
 * A client must refuse a major version it does not know and may warn on a
 * newer minor one.
 */

/** The version pullthrough's HTML renderings declare; JSON renderings decide per page (PEP 700). */
export const HTML_REPOSITORY_VERSION = '1.1'

/** The only major version of the simple API. */
const SUPPORTED_MAJOR = 1

/** `{ major, minor }` of a `Major.Minor` version string, or undefined. */
export function parseApiVersion(text: string): { major: number; minor: number } | undefined {
  const match = /^(\d{1,6})\.(\d{1,6})$/.exec(text.trim())
  if (match === null) return undefined
  return { major: Number(match[1]), minor: Number(match[2]) }
}

/** True for a well-formed version of a major version pullthrough speaks (1.x). */
export function isSupportedApiVersion(text: string): boolean {
  return parseApiVersion(text)?.major === SUPPORTED_MAJOR
}
