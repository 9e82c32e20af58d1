/** The parts the bundle tests share: the air-gapped side, and the CLI against an app. */
import type { Test } from 'tap'
import { startApp, type TestApp } from './app.ts'
import { cleanEnv, runCli, type CliResult } from './cli.ts'
import { freePort } from './free-port.ts'
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
