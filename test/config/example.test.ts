import { readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { z } from 'zod'
import { loadConfig } from '../../src/config/load.ts'
import { configSchema } from '../../src/config/schema.ts'

const EXAMPLE = fileURLToPath(new URL('../../config.example.yaml', import.meta.url))

/** Every key name the schema accepts, walking nested objects, arrays, defaults and optionals. */
function schemaKeys(schema: z.ZodType, into = new Set<string>()): Set<string> {
  const def = schema._zod.def as {
    type: string
    innerType?: z.ZodType
    element?: z.ZodType
    in?: z.ZodType
    out?: z.ZodType
    options?: z.ZodType[]
  }
  if (schema instanceof z.ZodObject) {
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-type-assertion -- shape is typed loosely on ZodObject
    for (const [key, child] of Object.entries(schema.shape as Record<string, z.ZodType>)) {
      into.add(key)
      schemaKeys(child, into)
    }
  }
  for (const child of [def.innerType, def.element, def.in, def.out, ...(def.options ?? [])]) {
    if (child) schemaKeys(child, into)
  }
  return into
}

t.test('config.example.yaml loads and its values are the built-in defaults', async (t) => {
  const example = await loadConfig({ file: EXAMPLE, cwd: '/srv', env: {} })
  const defaults = await loadConfig({ cwd: '/nonexistent-dir-for-defaults', env: {} })
  t.same(
    { ...example.config, storage: { ...example.config.storage, path: '' } },
    { ...defaults.config, storage: { ...defaults.config.storage, path: '' } },
  )
})

t.test('config.example.yaml documents every key the schema accepts', async (t) => {
  const text = await readFile(EXAMPLE, 'utf8')
  const keys = schemaKeys(configSchema)
  t.ok(keys.size > 30, `walked the schema (${keys.size} keys)`)
  for (const key of keys) {
    t.match(text, new RegExp(`^\\s*#?\\s*(- )?${key}:`, 'm'), `documents ${key}`)
  }
})
