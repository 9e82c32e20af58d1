/**
 * Which tags and versions a sync list keeps warm. Tags: names or globs, a
 * semver range, the newest N by version order. Versions: a PEP 440
 * specifier, the newest N, or a requirements file's lines. Pure functions,
 * so the rules are tested without any upstream.
 */
import * as pep440 from '@renovatebot/pep440'
import picomatch from 'picomatch'
import * as semver from 'semver'
import type { SyncImageConfig, SyncPackageConfig } from '../config/schema.ts'
import { SyncPlanError } from './errors.ts'

const GLOB = /[*?[\]{}!]/

/** The tags an image names literally, asked for directly with no tag list; undefined when a list is needed: no tag list is needed, each tag is asked for directly. */
export function literalTags(image: SyncImageConfig): readonly string[] | undefined {
  const tags = image.tags ?? ['latest']
  if (image.semver !== undefined || image.latest !== undefined) return undefined
  return tags.some((t) => GLOB.test(t)) ? undefined : tags
}

/**
 * A tag as a version and a variant: `v1.2`, `1.2` and `1.2.0` are 1.2.0;
 * `3.12-alpine` is 3.12.0 of the variant `alpine` (Docker's convention, not a
 * semver prerelease); undefined for `latest`, `bookworm`, `3.13.0rc1`.
 */
export function tagVersion(
  tag: string,
): { readonly version: semver.SemVer; readonly variant: string | undefined } | undefined {
  const match = /^v?(\d+(?:\.\d+){0,2})(?:-([A-Za-z0-9._-]+))?$/.exec(tag)
  const version = match?.[1] === undefined ? null : semver.coerce(match[1])
  return version ? { version, variant: match?.[2] } : undefined
}

/**
 * The upstream's tags the image selects: matching `tags`, inside `semver`, the
 * newest `latest` of them by version (tags that are no version drop out once
 * a range or `latest` is set). Without `tags`: `latest`, or with a range or
 * `latest` every plain version tag (no variant suffix). Newest first when
 * ordered by version, else by name.
 */
export function selectTags(image: SyncImageConfig, available: readonly string[]): string[] {
  const ordered = image.semver !== undefined || image.latest !== undefined
  const matches = image.tags
    ? picomatch(image.tags as string[], { dot: true })
    : ordered
      ? (tag: string) => tagVersion(tag)?.variant === undefined
      : (tag: string) => tag === 'latest'
  const chosen = available.filter((tag) => matches(tag))
  if (!ordered) return chosen.sort()
  const range = image.semver
  const versioned = chosen.flatMap((tag) => {
    const parsed = tagVersion(tag)
    if (!parsed) return []
    if (range !== undefined && !semver.satisfies(parsed.version, range)) return []
    return [{ tag, version: parsed.version }]
  })
  // Newest first; of two spellings of one version (`1.2`, `1.2.0`) the longer name first, for a stable order.
  versioned.sort(
    (a, b) =>
      semver.rcompare(a.version, b.version) ||
      b.tag.length - a.tag.length ||
      a.tag.localeCompare(b.tag),
  )
  const tags = versioned.map((v) => v.tag)
  return image.latest === undefined ? tags : tags.slice(0, image.latest)
}

/** A requirement line as a project and its PEP 440 specifier; undefined for a line with nothing to sync. */
export function parseRequirementLine(
  line: string,
): { readonly project: string; readonly versions: string | undefined } | undefined {
  const text = line.replace(/(^|\s)#.*$/, '').trim()
  // Options (`-r other.txt`, `--index-url`), URLs and paths are pip's business, not a sync's.
  if (text === '' || text.startsWith('-')) return undefined
  const requirement = (text.split(';')[0] ?? '').replace(/\s--hash[= ]\S+/g, '').trim()
  const match = /^([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*(.*)$/.exec(requirement)
  const project = match?.[1]
  const spec = (match?.[2] ?? '').replace(/\s+/g, '')
  if (project === undefined || spec.startsWith('@'))
    throw new SyncPlanError(`"${text}": not a requirement like name, name==1.2 or name>=1,<2`)
  if (spec !== '' && !pep440.validRange(spec))
    throw new SyncPlanError(`"${text}": "${spec}" is not a PEP 440 specifier`)
  return { project, versions: spec === '' ? undefined : spec }
}

/**
 * The versions a package selects from those listed: inside `versions`
 * (yanked ones only when pinned with `==`), the newest `latest` of them; with
 * neither set, the newest one. Newest first.
 */
export function selectVersions(
  pkg: Pick<SyncPackageConfig, 'versions' | 'latest'>,
  listed: readonly { readonly version: string; readonly yanked: boolean }[],
): string[] {
  const spec = pkg.versions
  const pinned = spec !== undefined && /^===?[^,]+$/.test(spec)
  const versions: string[] = []
  for (const { version, yanked } of listed) {
    if (!pep440.valid(version)) continue
    if (yanked && !pinned) continue
    if (spec !== undefined ? !pep440.satisfies(version, spec) : isPrerelease(version)) continue
    // `1.0` and `1.0.0` are one version: the first spelling listed stands for both.
    if (!versions.some((v) => pep440.eq(v, version))) versions.push(version)
  }
  const newest = versions.sort((a, b) => pep440.compare(b, a))
  const count = pkg.latest ?? (spec === undefined ? 1 : newest.length)
  return newest.slice(0, count)
}

function isPrerelease(version: string): boolean {
  const parsed = pep440.explain(version)
  return parsed !== null && (parsed.is_prerelease || parsed.is_devrelease)
}
