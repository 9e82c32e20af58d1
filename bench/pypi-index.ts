/**
 * A static PEP 503 index on disk for nginx to serve: a project page of
 * PAGE_FILES links, as a project with a long release history has (numpy
 * lists thousands). The files a bench downloads are listed with their real
 * sha256; the other releases are listed, never downloaded, and their hashes
 * only have to look right.
 */
import { randomBytes } from 'node:crypto'
import { chmod, mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'

/** Links on the project page. */
export const PAGE_FILES = 300

/**
 * Writes `root/simple/<project>/index.html` listing `files` (name and sha256,
 * stored under `root/files/`) and made-up releases up to PAGE_FILES links;
 * every directory world-readable (nginx workers run unprivileged).
 */
export async function writeProjectPage(
  root: string,
  project: string,
  files: readonly { readonly name: string; readonly sha256: string }[],
): Promise<void> {
  const pageDir = join(root, 'simple', project)
  await mkdir(pageDir, { recursive: true })
  await mkdir(join(root, 'files'), { recursive: true })
  const links = files.map((f) => `${f.name}#sha256=${f.sha256}`)
  for (let i = links.length; i < PAGE_FILES; i++)
    links.push(`${project}-0.${i}.0-py3-none-any.whl#sha256=${randomBytes(32).toString('hex')}`)
  const anchors = links
    .map((link) => `    <a href="../../files/${link}">${link.split('#')[0] ?? ''}</a><br/>`)
    .join('\n')
  await writeFile(
    join(pageDir, 'index.html'),
    `<!DOCTYPE html>\n<html>\n  <body>\n    <h1>Links for ${project}</h1>\n${anchors}\n  </body>\n</html>\n`,
  )
  for (const dir of [root, join(root, 'simple'), pageDir, join(root, 'files')])
    await chmod(dir, 0o755)
}
