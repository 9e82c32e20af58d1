/** Builds validated configs for tests, on the same path as production (schema + freeze). */
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Test } from 'tap'
import { loadConfig, type LoadedConfig } from '../../src/config/load.ts'

/** A temp directory removed when the test ends. */
export async function tempDir(t: Test, prefix = 'pt-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  return dir
}

/**
 * Loads `yaml` as a config file in a fresh temp dir whose storage path is inside it
 * and whose server listens on 127.0.0.1 on a free port.
 */
export async function testConfig(
  t: Test,
  yaml = '',
  env: NodeJS.ProcessEnv = {},
): Promise<LoadedConfig & { dir: string }> {
  const dir = await tempDir(t)
  const file = join(dir, 'config.yaml')
  await writeFile(file, yaml)
  const loaded = await loadConfig({
    file,
    cwd: dir,
    env: {
      PULLTHROUGH_HOST: '127.0.0.1',
      PULLTHROUGH_PORT: '0',
      PULLTHROUGH_STORAGE_PATH: join(dir, 'data'),
      ...env,
    },
  })
  return { ...loaded, dir }
}
