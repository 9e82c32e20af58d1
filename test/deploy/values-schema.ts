/**
 * The chart's values.schema.json validates `config` with a JSON schema generated
 * from the server's zod schema, so `helm install` rejects an unknown key, a
 * wrong type or an invalid name before a pod ever starts. chart.test.ts fails
 * when the file is out of date; regenerate it with
 *
 *   node --import tsx test/deploy/values-schema.ts
 */
import { readFile, writeFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import * as prettier from 'prettier'
import { z } from 'zod'
import { configSchema } from '../../src/config/schema.ts'

export const VALUES_SCHEMA_FILE = fileURLToPath(
  new URL('../../helm/pullthrough/values.schema.json', import.meta.url),
)

/**
 * The schema of `config` as the server reads it (input side: durations and sizes
 * as written). Refinements JSON schema cannot say (URL checks, one default per
 * list) are left to the server, which reports them at start-up.
 */
export function configValuesSchema(): Record<string, unknown> {
  // Draft 7: what Helm's validators (gojsonschema, then jsonschema/v6) all read.
  const generated = z.toJSONSchema(configSchema, {
    target: 'draft-7',
    io: 'input',
    unrepresentable: 'any',
  }) as Record<string, unknown>
  const schema = Object.fromEntries(Object.entries(generated).filter(([key]) => key !== '$schema'))
  // The chart passes the Redis URL as PULLTHROUGH_REDIS_URL (from a Secret) and
  // refuses config.metadata.redis.url, so other metadata.redis keys come without it.
  const redis = pick(schema, 'properties', 'metadata', 'properties', 'redis')
  if (!redis || !Array.isArray(redis.required)) throw new Error('config.metadata.redis moved')
  delete redis.required
  return {
    description:
      "pullthrough's configuration (config.example.yaml). Generated from src/config/schema.ts by test/deploy/values-schema.ts.",
    ...schema,
  }
}

function pick(node: unknown, ...path: string[]): Record<string, unknown> | undefined {
  let current = node
  for (const key of path) {
    if (current === null || typeof current !== 'object') return undefined
    current = (current as Record<string, unknown>)[key]
  }
  return current !== null && typeof current === 'object'
    ? (current as Record<string, unknown>)
    : undefined
}

/** Rewrites `properties.config` of values.schema.json, leaving the rest as written. */
export async function writeValuesSchema(): Promise<void> {
  const current = JSON.parse(await readFile(VALUES_SCHEMA_FILE, 'utf8')) as {
    properties: Record<string, unknown>
  }
  current.properties.config = configValuesSchema()
  const options = (await prettier.resolveConfig(VALUES_SCHEMA_FILE)) ?? {}
  const text = await prettier.format(JSON.stringify(current), { ...options, parser: 'json' })
  await writeFile(VALUES_SCHEMA_FILE, text)
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await writeValuesSchema()
