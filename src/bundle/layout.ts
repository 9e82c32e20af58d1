/**
 * The generated entries of a bundle: the OCI image layout's `oci-layout` and
 * `index.json` (one descriptor per image, named by REF_NAME), and a PEP 503
 * tree per index whose links are relative, so the unpacked bundle is an index
 * pip reads from disk (`--index-url file://…/pypi/<index>/simple/`).
 */
import { digestOf } from '../storage/digest.ts'
import { escapeHtml } from '../escape-html.ts'
import {
  OCI_INDEX,
  OCI_INDEX_MEDIA_TYPE,
  OCI_LAYOUT,
  REF_NAME,
  filePath,
  imageName,
  projectPagePath,
  rootPagePath,
  type BundleImage,
  type BundlePackage,
} from './format.ts'

/** An entry whose bytes are made here. */
export interface GeneratedEntry {
  readonly path: string
  readonly digest: string
  readonly size: number
  readonly body: Buffer
}

function generated(path: string, text: string): GeneratedEntry {
  const body = Buffer.from(text)
  return { path, body, digest: digestOf(body), size: body.length }
}

/** `oci-layout` and `index.json`; none when there are no images. */
export function layoutEntries(images: readonly BundleImage[]): GeneratedEntry[] {
  if (images.length === 0) return []
  const index = {
    schemaVersion: 2,
    mediaType: OCI_INDEX_MEDIA_TYPE,
    manifests: images.map((image) => ({
      mediaType: image.mediaType,
      digest: image.digest,
      size: image.size,
      annotations: { [REF_NAME]: imageName(image) },
    })),
  }
  return [
    generated(OCI_LAYOUT, `${JSON.stringify({ imageLayoutVersion: '1.0.0' })}\n`),
    generated(OCI_INDEX, `${JSON.stringify(index, null, 2)}\n`),
  ]
}

/** Per index, its project list and a page per project. */
export function simpleEntries(packages: readonly BundlePackage[]): GeneratedEntry[] {
  const byIndex = new Map<string, BundlePackage[]>()
  for (const pkg of packages) byIndex.set(pkg.index, [...(byIndex.get(pkg.index) ?? []), pkg])
  const entries: GeneratedEntry[] = []
  for (const [index, pkgs] of byIndex) {
    const projects = [...new Set(pkgs.map((p) => p.project))].sort()
    const links = projects.map(
      (p) => `    <a href="${escapeHtml(encodeURIComponent(p))}/">${escapeHtml(p)}</a><br/>`,
    )
    entries.push(generated(rootPagePath(index), page('Simple index', links)))
    for (const project of projects) {
      const files = pkgs.filter((p) => p.project === project).flatMap((p) => p.files)
      const anchors = files.map((f) => {
        // From pypi/<index>/simple/<project>/ to pypi/<index>/files/<project>/<filename>.
        const href = `../../${filePath(index, project, f.filename).split('/').slice(2).map(encodeURIComponent).join('/')}#sha256=${f.sha256}`
        const python =
          f.requiresPython === undefined
            ? ''
            : ` data-requires-python="${escapeHtml(f.requiresPython)}"`
        const yanked =
          f.yanked === undefined
            ? ''
            : ` data-yanked="${f.yanked === true ? '' : escapeHtml(f.yanked)}"`
        return `    <a href="${escapeHtml(href)}"${python}${yanked}>${escapeHtml(f.filename)}</a><br/>`
      })
      entries.push(
        generated(projectPagePath(index, project), page(`Links for ${project}`, anchors)),
      )
    }
  }
  return entries
}

function page(title: string, lines: readonly string[]): string {
  return `<!DOCTYPE html>
<html>
  <head>
    <meta name="pypi:repository-version" content="1.0">
    <title>${escapeHtml(title)}</title>
  </head>
  <body>
${lines.join('\n')}
  </body>
</html>
`
}
