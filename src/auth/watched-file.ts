/**
 * A small file read again when it changes (htpasswd, groups): at most one stat
 * per RECHECK_MS, and a new parse only when its inode, size or mtime moved. A
 * change that cannot be read or parsed keeps the last good contents (and is
 * reported once), so a half-written edit never locks everyone out.
 */
import { readFile, stat } from 'node:fs/promises'
import { AuthFileError } from './errors.ts'

/** How often a file is checked for changes, at most. */
export const RECHECK_MS = 1000

export interface WatchedFileOptions<T> {
  readonly path: string
  /** What the file is, for messages ("auth.htpasswd"). */
  readonly key: string
  readonly parse: (text: string) => T
  readonly onReloadFailed?: (error: Error) => void
  readonly onReloaded?: () => void
  readonly now?: () => number
}

export class WatchedFile<T> {
  #value: T
  #identity: string
  #checkedAt: number
  #checking: Promise<void> | undefined

  private constructor(
    private readonly options: WatchedFileOptions<T>,
    value: T,
    identity: string,
  ) {
    this.#value = value
    this.#identity = identity
    this.#checkedAt = this.#now()
  }

  /** Reads and parses the file; fails with AuthFileError (naming the key) when it cannot. */
  static async open<T>(options: WatchedFileOptions<T>): Promise<WatchedFile<T>> {
    const { value, identity } = await load(options)
    return new WatchedFile(options, value, identity)
  }

  /** The contents, re-read first when the file may have changed. */
  async current(): Promise<T> {
    if (this.#now() - this.#checkedAt >= RECHECK_MS) {
      this.#checking ??= this.#recheck().finally(() => {
        this.#checking = undefined
      })
      await this.#checking
    }
    return this.#value
  }

  async #recheck(): Promise<void> {
    this.#checkedAt = this.#now()
    try {
      const identity = await identityOf(this.options.path)
      if (identity === this.#identity) return
      const loaded = await load(this.options)
      this.#value = loaded.value
      this.#identity = loaded.identity
      this.options.onReloaded?.()
    } catch (error) {
      this.options.onReloadFailed?.(error as Error)
    }
  }

  #now(): number {
    return (this.options.now ?? Date.now)()
  }
}

async function identityOf(path: string): Promise<string> {
  const s = await stat(path, { bigint: true })
  return `${s.dev}:${s.ino}:${s.size}:${s.mtimeNs}`
}

async function load<T>(options: WatchedFileOptions<T>): Promise<{ value: T; identity: string }> {
  let text: string
  let identity: string
  try {
    identity = await identityOf(options.path)
    text = await readFile(options.path, 'utf8')
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'error'
    throw new AuthFileError(`${options.key}: cannot read the file (${code})`, { cause: error })
  }
  try {
    return { value: options.parse(text), identity }
  } catch (error) {
    throw new AuthFileError(`${options.key}: ${(error as Error).message}`, { cause: error })
  }
}
