/**
 * Users from an htpasswd file, the format CNCF Distribution and nginx read:
 * `user:hash` per line, bcrypt hashes only (`htpasswd -B`, `$2y$`/`$2a$`/`$2b$`).
 * Groups from a side file: `group: user1 user2` per line.
 *
 * bcrypt is slow on purpose (tens of ms per check), and pip or containerd may
 * send Basic credentials with every request, so a pair that checked out is
 * remembered, as a SHA-256 of user and password, for VERIFIED_TTL_MS or until
 * the file changes. Wrong passwords are never remembered: each costs a bcrypt.
 */
import { createHash } from 'node:crypto'
import bcrypt from 'bcryptjs'
import type { Identity } from './identity.ts'

/** How long a verified user:password pair is trusted without another bcrypt. */
export const VERIFIED_TTL_MS = 60_000
/** Verified pairs remembered at most (oldest dropped first). */
export const MAX_VERIFIED = 10_000

const BCRYPT = /^\$2[aby]\$\d{2}\$[./A-Za-z0-9]{53}$/
const USER = /^[^:\s]{1,256}$/

/** Parses an htpasswd file; throws naming the first bad line. */
export function parseHtpasswd(text: string): Map<string, string> {
  const users = new Map<string, string>()
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim()
    if (line === '' || line.startsWith('#')) return
    const colon = line.indexOf(':')
    const user = line.slice(0, colon)
    const hash = line.slice(colon + 1)
    if (colon < 1 || !USER.test(user)) throw new Error(`line ${i + 1}: expected "user:bcrypt-hash"`)
    if (!BCRYPT.test(hash))
      throw new Error(
        `line ${i + 1} (user ${user}): only bcrypt hashes are supported (create them with htpasswd -B)`,
      )
    if (users.has(user)) throw new Error(`line ${i + 1}: user ${user} is listed twice`)
    users.set(user, hash)
  })
  return users
}

/** Parses a groups file (`group: user1 user2`) into each user's groups. */
export function parseGroups(text: string): Map<string, string[]> {
  const groupsOf = new Map<string, string[]>()
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim()
    if (line === '' || line.startsWith('#')) return
    const match = /^([^:\s]+)\s*:(.*)$/.exec(line)
    if (!match) throw new Error(`line ${i + 1}: expected "group: user1 user2"`)
    const [, group = '', members = ''] = match
    for (const user of members.split(/\s+/).filter(Boolean)) {
      const list = groupsOf.get(user) ?? []
      if (!list.includes(group)) list.push(group)
      groupsOf.set(user, list)
    }
  })
  return groupsOf
}

/** Where users and their groups come from now (files re-read on change by the caller). */
export interface UserFiles {
  users(): Promise<ReadonlyMap<string, string>>
  groups(): Promise<ReadonlyMap<string, readonly string[]>>
}

export class HtpasswdUsers {
  /** key -> [expiry, the hash it matched] */
  readonly #verified = new Map<string, [number, string]>()

  constructor(
    private readonly files: UserFiles,
    private readonly now: () => number = Date.now,
  ) {}

  /** The user, when the password matches their hash; undefined otherwise. */
  async verify(user: string, password: string): Promise<Identity | undefined> {
    const hash = (await this.files.users()).get(user)
    if (hash === undefined) {
      // As slow as a real check, so a probe cannot tell which users exist.
      await bcrypt.compare(password, dummyHash())
      return undefined
    }
    const key = createHash('sha256').update(user).update('\0').update(password).digest('hex')
    const known = this.#verified.get(key)
    const now = this.now()
    if (!(known && known[0] > now && known[1] === hash)) {
      if (!(await bcrypt.compare(password, hash))) return undefined
      this.#verified.delete(key)
      this.#verified.set(key, [now + VERIFIED_TTL_MS, hash])
      if (this.#verified.size > MAX_VERIFIED) {
        const oldest = this.#verified.keys().next().value
        if (oldest !== undefined) this.#verified.delete(oldest)
      }
    }
    return { name: user, groups: (await this.files.groups()).get(user) ?? [] }
  }
}

let dummy: string | undefined
/** A bcrypt hash of nothing anyone sends, at htpasswd -B's default cost; made on first use. */
function dummyHash(): string {
  dummy ??= bcrypt.hashSync('pullthrough: no such user', 10)
  return dummy
}
