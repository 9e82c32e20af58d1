/** The parts the bundle tests share: the air-gapped side, and the CLI against an app. */
import { createHash } from 'node:crypto'
import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { Test } from 'tap'
import { startApp, type TestApp } from './app.ts'
import { cleanEnv, runCli, type CliResult } from './cli.ts'
import { tempDir } from './config.ts'
import { freePort } from './free-port.ts'
import { pip } from './pypi-packages.ts'
import { indexYaml, type PypiUpstream } from './pypi-upstream.ts'
import type { TestRegistry } from './registry.ts'

/**
 * A pullthrough with no upstream at all: offline, with a registry `docker.io`
 * and a default index `index` whose upstreams are ports nobody listens on.
 */
export async function startAirgap(t: Test, token: string, index = 'pypi'): Promise<TestApp> {
  const dead = await freePort()
  return startApp(t, {
    yaml: `offline: true
docker:
  registries:
    - { name: docker.io, default: true, upstreams: [{ url: "http://127.0.0.1:${dead}" }] }
pypi:
  indexes:
    - { name: ${index}, default: true, upstreams: [{ url: "http://127.0.0.1:${dead}/simple/" }] }
admin: { token: "${token}" }
`,
  })
}

/** A pullthrough in front of a real registry (`docker.io`) and a PyPI-shaped index (`pypi`); `extra` adds config lines. */
export async function startSource(
  t: Test,
  token: string,
  registry: TestRegistry,
  upstream: PypiUpstream,
  extra = '',
): Promise<TestApp> {
  return startApp(t, {
    yaml: `docker:
  registries:
    - { name: docker.io, default: true, upstreams: [{ url: "${registry.url}" }] }
${indexYaml([upstream])}admin: { token: "${token}" }
${extra}`,
  })
}

/** Runs `pullthrough <args>` against `app` with its admin token. */
export function cliAgainst(
  t: Test,
  app: TestApp,
  token: string,
  args: string[],
): Promise<CliResult> {
  return runCli(t, [...args, '--url', app.url, '--token', token], { env: cleanEnv() })
}

/** `pip download --no-deps` of `requirement` from `indexUrl`: pip's result and each file's name and digest. */
export async function pipDownload(t: Test, indexUrl: string, requirement: string) {
  const dest = await tempDir(t, 'pt-bundle-pip-')
  const run = await pip(t, [
    'download',
    '--no-deps',
    '--dest',
    dest,
    '--index-url',
    indexUrl,
    requirement,
  ])
  const files = await readdir(dest)
  return {
    run,
    files: await Promise.all(
      files.map(async (f) => ({
        name: f,
        digest: `sha256:${createHash('sha256')
          .update(await readFile(join(dest, f)))
          .digest('hex')}`,
      })),
    ),
  }
}
