/**
 * Rewrites a legacy JSON API document (`/pypi/<project>/json`) as it streams:
 * the JSON is checked as it passes, every file entry (the items of `urls` and
 * of each `releases[<version>]` array) is parsed on its own, handed to
 * `rewriteFile` and written back rewritten or left out; everything else passes
 * through with `<`, `>` and `&` escaped, so no markup reaches a client. The
 * documents of big projects are tens of MB; this holds one file entry at a
 * time, never the document.
 */
import { Transform } from 'node:stream'
import { StringDecoder } from 'node:string_decoder'
import { UpstreamDocumentInvalidError } from './errors.ts'

/** A file entry in, the entry to serve (or undefined to leave it out) out. */
export type FileRewrite = (entry: Record<string, unknown>) => Record<string, unknown> | undefined

/** Longest file entry held while it is rewritten (pypi.org's are under 2 KiB). */
export const MAX_FILE_ENTRY_CHARS = 1024 * 1024
/** Deepest nesting accepted (the document's own is 4 levels). */
const MAX_DEPTH = 64
/** Longest number or literal token. */
const MAX_TOKEN_CHARS = 256
/** Longest object key kept to recognise `urls` and `releases`. */
const MAX_KEY_CHARS = 16

/** What a container is in the document: only `files` arrays and `releases` get special handling. */
type Role = 'root' | 'releases' | 'files' | 'other'
type Expect = 'value' | 'first-value' | 'key' | 'first-key' | 'colon' | 'after-value' | 'end'

interface Frame {
  readonly type: 'object' | 'array'
  readonly role: Role
  /** The key being read or whose value is being read (objects; bounded). */
  key: string
  /** Entries written so far (files arrays: decides the separating comma). */
  written: number
}

/** Where bytes go: to the client, into the entry being held, or nowhere (a value being replaced). */
type Sink =
  | { readonly kind: 'out' }
  | { readonly kind: 'entry'; readonly depth: number; text: string }
  | { readonly kind: 'replace'; readonly depth: number; readonly with: string }

const QUOTE = 0x22
const BACKSLASH = 0x5c
const MARKUP: Readonly<Record<string, string>> = { '<': '\\u003c', '>': '\\u003e', '&': '\\u0026' }

/** Rewrites a legacy JSON document; fails with UpstreamDocumentInvalidError on anything but JSON. */
export function rewriteLegacyJson(rewriteFile: FileRewrite): Transform {
  const decoder = new StringDecoder('utf8')
  const scanner = new Scanner(rewriteFile)
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      try {
        callback(null, scanner.write(decoder.write(chunk)))
      } catch (error) {
        callback(error as Error)
      }
    },
    flush(callback) {
      try {
        callback(null, scanner.end(decoder.end()))
      } catch (error) {
        callback(error as Error)
      }
    },
  })
}

class Scanner {
  readonly #stack: Frame[] = []
  #expect: Expect = 'value'
  #sink: Sink = { kind: 'out' }
  /** A string in progress: key or value, and how far into an escape (0 none, 1 after '\', 2-5 hex). */
  #string: { readonly key: boolean; escape: number } | undefined
  /** A number or literal in progress. */
  #token: string | undefined
  #out: string[] = []
  /** Start of the not yet copied part of the current chunk. */
  #from = 0
  #text = ''

  constructor(private readonly rewriteFile: FileRewrite) {}

  write(text: string): string {
    this.#text = text
    this.#from = 0
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i)
      // The bulk of a document: plain characters inside a string value, copied as they are.
      const string = this.#string
      if (string && !string.key && string.escape === 0 && isPlain(c)) continue
      this.#step(i, c)
    }
    this.#copy(text.length)
    return this.#out.splice(0).join('')
  }

  end(text: string): string {
    const rest = this.write(text)
    if (this.#token !== undefined) this.#endToken(this.#text.length)
    if (this.#expect !== 'end' || this.#string) this.#fail('the document ends early')
    return rest
  }

  #step(i: number, c: number): void {
    if (this.#string) {
      this.#stringChar(i, c)
      return
    }
    if (this.#token !== undefined) {
      if (isTokenChar(c)) {
        this.#token += String.fromCharCode(c)
        if (this.#token.length > MAX_TOKEN_CHARS) this.#fail('a number runs on')
        return
      }
      this.#endToken(i)
    }
    if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) return
    const top = this.#stack.at(-1)
    switch (this.#expect) {
      case 'first-value':
        if (c === 0x5d) return this.#pop(i, 'array')
        return this.#startValue(i, c, top)
      case 'value':
        return this.#startValue(i, c, top)
      case 'first-key':
        if (c === 0x7d) return this.#pop(i, 'object')
        return this.#startKey(c, top)
      case 'key':
        return this.#startKey(c, top)
      case 'colon':
        if (c !== 0x3a) return this.#fail("':' is expected")
        this.#expect = 'value'
        return
      case 'after-value':
        if (c === 0x2c) {
          // Commas between file entries are written with the entries (some are left out).
          if (top?.role === 'files') this.#skip(i)
          this.#expect = top?.type === 'object' ? 'key' : 'value'
          return
        }
        if (c === 0x7d && top?.type === 'object') return this.#pop(i, 'object')
        if (c === 0x5d && top?.type === 'array') return this.#pop(i, 'array')
        return this.#fail("',' or the end of a container is expected")
      case 'end':
        return this.#fail('data after the document')
    }
  }

  #startKey(c: number, top: Frame | undefined): void {
    if (c !== QUOTE) this.#fail('an object key is expected')
    this.#string = { key: true, escape: 0 }
    if (top) top.key = ''
  }

  #stringChar(i: number, c: number): void {
    const string = this.#string
    if (!string) return
    if (string.escape === 1) {
      if (c === 0x75) string.escape = 2
      else if ('"\\/bfnrt'.includes(String.fromCharCode(c))) string.escape = 0
      else this.#fail('a bad escape in a string')
    } else if (string.escape > 1) {
      if (!isHex(c)) this.#fail('a bad \\u escape in a string')
      string.escape = string.escape === 5 ? 0 : string.escape + 1
    } else if (c === QUOTE) {
      this.#string = undefined
      if (string.key) this.#expect = 'colon'
      else this.#valueDone(i + 1)
      return
    } else if (c === BACKSLASH) {
      string.escape = 1
    } else if (c < 0x20) {
      this.#fail('a control character in a string')
    } else if (!isPlain(c)) {
      this.#replace(i, MARKUP[String.fromCharCode(c)] ?? '')
    }
    const top = this.#stack.at(-1)
    if (string.key && top && top.key.length <= MAX_KEY_CHARS) top.key += String.fromCharCode(c)
  }

  #startValue(i: number, c: number, parent: Frame | undefined): void {
    const role = this.#roleOf(i, c, parent)
    if (c === 0x7b || c === 0x5b) {
      if (this.#stack.length >= MAX_DEPTH) this.#fail('nesting too deep')
      const type = c === 0x7b ? 'object' : 'array'
      if (parent === undefined && type !== 'object') this.#fail('the document is not an object')
      this.#stack.push({ type, role, key: '', written: 0 })
      this.#expect = type === 'object' ? 'first-key' : 'first-value'
    } else if (parent === undefined) {
      this.#fail('the document is not an object')
    } else if (c === QUOTE) {
      this.#string = { key: false, escape: 0 }
    } else if (c === 0x2d || (c >= 0x30 && c <= 0x39) || c === 0x74 || c === 0x66 || c === 0x6e) {
      this.#token = String.fromCharCode(c)
    } else {
      this.#fail('a value is expected')
    }
  }

  /** The role of a value starting at `i`, starting to hold or replace it when it needs that. */
  #roleOf(i: number, c: number, parent: Frame | undefined): Role {
    if (this.#sink.kind !== 'out') return 'other'
    if (parent === undefined) return 'root'
    const array = c === 0x5b
    if (parent.role === 'files') {
      this.#divert(i, { kind: 'entry', depth: this.#stack.length, text: '' })
      return 'other'
    }
    if (parent.role === 'releases') {
      if (array) return 'files'
      this.#divert(i, { kind: 'replace', depth: this.#stack.length, with: '[]' })
      return 'other'
    }
    if (parent.role === 'root' && parent.key === 'urls') {
      if (array) return 'files'
      this.#divert(i, { kind: 'replace', depth: this.#stack.length, with: '[]' })
      return 'other'
    }
    if (parent.role === 'root' && parent.key === 'releases') {
      if (c === 0x7b) return 'releases'
      this.#divert(i, { kind: 'replace', depth: this.#stack.length, with: '{}' })
      return 'other'
    }
    return 'other'
  }

  #pop(i: number, type: Frame['type']): void {
    const frame = this.#stack.pop()
    if (frame?.type !== type) this.#fail('mismatched brackets')
    this.#valueDone(i + 1)
  }

  #endToken(end: number): void {
    const token = this.#token ?? ''
    this.#token = undefined
    const valid =
      token === 'true' ||
      token === 'false' ||
      token === 'null' ||
      /^-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?$/.test(token)
    if (!valid) this.#fail('a bad number or literal')
    this.#valueDone(end)
  }

  /** A value ended just before `end`: the held entry or replaced value is complete when at its depth. */
  #valueDone(end: number): void {
    const sink = this.#sink
    if (sink.kind !== 'out' && this.#stack.length === sink.depth) {
      this.#copy(end)
      this.#sink = { kind: 'out' }
      if (sink.kind === 'replace') this.#out.push(sink.with)
      else this.#writeEntry(sink.text)
    }
    this.#expect = this.#stack.length === 0 ? 'end' : 'after-value'
  }

  #writeEntry(text: string): void {
    const files = this.#stack.at(-1)
    const entry = JSON.parse(text) as unknown
    const kept =
      typeof entry === 'object' && entry !== null && !Array.isArray(entry)
        ? this.rewriteFile(entry as Record<string, unknown>)
        : undefined
    if (!kept || !files) return
    const json = JSON.stringify(kept).replace(/[<>&]/g, (m) => MARKUP[m] ?? m)
    this.#out.push(files.written++ === 0 ? json : `,${json}`)
  }

  /** Copies the current chunk up to `end` to the sink. */
  #copy(end: number): void {
    if (end <= this.#from) return
    const part = this.#text.slice(this.#from, end)
    this.#from = end
    const sink = this.#sink
    if (sink.kind === 'out') this.#out.push(part)
    else if (sink.kind === 'entry') {
      sink.text += part
      if (sink.text.length > MAX_FILE_ENTRY_CHARS) this.#fail('a file entry is too large')
    }
  }

  #divert(i: number, sink: Sink): void {
    this.#copy(i)
    this.#sink = sink
  }

  #skip(i: number): void {
    this.#copy(i)
    this.#from = i + 1
  }

  #replace(i: number, text: string): void {
    this.#copy(i)
    this.#from = i + 1
    const sink = this.#sink
    if (sink.kind === 'out') this.#out.push(text)
    else if (sink.kind === 'entry') sink.text += text
  }

  #fail(reason: string): never {
    throw new UpstreamDocumentInvalidError('legacy JSON document', reason)
  }
}

function isTokenChar(c: number): boolean {
  return (
    (c >= 0x30 && c <= 0x39) ||
    (c >= 0x61 && c <= 0x7a) ||
    c === 0x2e ||
    c === 0x2b ||
    c === 0x2d ||
    c === 0x45
  )
}

/** A string character copied as it is: not a quote, backslash, control character or markup. */
function isPlain(c: number): boolean {
  return c >= 0x20 && c !== QUOTE && c !== BACKSLASH && c !== 0x3c && c !== 0x3e && c !== 0x26
}

function isHex(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66) || (c >= 0x41 && c <= 0x46)
}
