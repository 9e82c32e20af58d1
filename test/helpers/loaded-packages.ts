/**
 * Loaded with `--import` before a child's entry point: at exit it writes to
 * $LOADED_PACKAGES_FILE the names of the packages under node_modules whose
 * CommonJS modules the process loaded (imported or required), as JSON.
 */
import { writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'

const file = process.env.LOADED_PACKAGES_FILE
const cache = createRequire(import.meta.url).cache

if (file)
  process.on('exit', () => {
    const names = new Set<string>()
    for (const path of Object.keys(cache)) {
      const match = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(path)
      if (match?.[1]) names.add(match[1])
    }
    writeFileSync(file, JSON.stringify([...names].sort()))
  })
