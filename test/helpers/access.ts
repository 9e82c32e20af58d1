/**
 * Access-control fixtures: users in an htpasswd file of bcrypt hashes in the
 * `$2y$` form `htpasswd -B` writes, and a real registry behind pullthrough
 * with auth, access and proxy rules.
 */
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import bcrypt from 'bcryptjs'
import type { Test } from 'tap'
import { startApp } from './app.ts'
import { tempDir } from './config.ts'
import { buildImage } from './images.ts'
import { startRegistry } from './registry.ts'

export const PASSWORDS = {
  alice: 'alice-secret-1',
  bob: 'bob-secret-22',
  carol: 'carol-secret-333',
}

/** An htpasswd line as `htpasswd -B` writes it (bcryptjs makes `$2b$`; the hash is the same). */
export function htpasswdLine(user: string, password: string): string {
  return `${user}:${bcrypt.hashSync(password, 4).replace(/^\$2b\$/, '$2y$')}\n`
}

export const basic = (user: string, password: string) =>
  `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`

/**
 * A registry with library/app, myorg/secret and blocked/thing; pullthrough in
 * front as docker.io with auth on: dev (alice) may pull myorg/**, every
 * signed-in user library/*, nobody blocked/** (proxy rule), alice is admin.
 */
export async function securedRegistry(t: Test, extraYaml = '') {
  const registry = await startRegistry(t)
  const dir = await tempDir(t, 'pt-access-')
  const image = await buildImage(join(dir, 'oci'), { layers: [2048], tag: 'v1' })
  for (const name of ['library/app', 'myorg/secret', 'blocked/thing'])
    await registry.pushImage(image, `${name}:v1`)
  const htpasswd = join(dir, 'htpasswd')
  await writeFile(
    htpasswd,
    `# users\n${htpasswdLine('alice', PASSWORDS.alice)}${htpasswdLine('bob', PASSWORDS.bob)}`,
  )
  const groups = join(dir, 'groups')
  await writeFile(groups, 'dev: alice\n')
  const app = await startApp(t, {
    yaml: `docker:
  registries:
    - { name: docker.io, default: true, upstreams: [{ url: "${registry.url}" }], retry: { attempts: 1 } }
pypi: { indexes: [] }
auth:
  htpasswd: ${htpasswd}
  groups: ${groups}
  admins: { users: [alice] }
access:
  - { registry: docker.io, repository: "myorg/**", groups: [dev] }
  - { registry: docker.io, repository: "library/*", users: ["*"] }
proxy:
  - { registry: docker.io, deny: ["blocked/**"] }
${extraYaml}`,
  })
  return {
    registry,
    app,
    host: new URL(app.url).host,
    htpasswd,
    digest: image.manifests[0]!.digest,
  }
}
