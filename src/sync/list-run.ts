/**
 * One run of a sync list. First the plan: each image's tags (listed upstream
 * only when globs, a range or `latest` need the list) and each project's page,
 * revalidated now; then each tag or version, one at a time: its manifests and
 * blobs, or its files, fetched only when the store lacks them, at the list's
 * average rate. An unchanged tag or page costs one conditional request.
 * Failures that may pass are retried with backoff; an item that still fails
 * is reported and does not stop the others.
 */
import { readFile } from 'node:fs/promises'
import { setTimeout as sleep } from 'node:timers/promises'
import picomatch from 'picomatch'
import * as pep440 from '@renovatebot/pep440'
import type { SyncImageConfig, SyncListConfig, SyncPackageConfig } from '../config/schema.ts'
import type { Logger } from '../observability/logger.ts'
import type { Metrics } from '../observability/metrics.ts'
import { withRetries, type Backoff } from './backoff.ts'
import { SyncPlanError, SyncUpstreamStaleError } from './errors.ts'
import type { ImageRef, ImageSync, ProjectRef, ProjectSync, SyncManifest } from './ports.ts'
import { blobDescriptors, childManifests } from './manifest-refs.ts'
import { literalTags, parseRequirementLine, selectTags, selectVersions } from './select.ts'

export type SyncTrigger = 'schedule' | 'api'
export type ItemState = 'new' | 'updated' | 'unchanged' | 'failed'

/** Items kept in a run's status (all are counted). */
export const MAX_LISTED_ITEMS = 1000

export interface SyncItemResult {
  /** `docker.io/library/python:3.12` or `pypi/requests==2.32.3`. */
  readonly name: string
  readonly state: ItemState
  /** Bytes fetched from upstreams for it. */
  readonly bytes: number
  /** The tag's manifest digest, when it is an image. */
  readonly digest?: string
  readonly error?: string
}

export interface SyncCounts {
  readonly new: number
  readonly updated: number
  readonly unchanged: number
  readonly failed: number
  readonly bytes: number
}

export interface SyncRun extends SyncCounts {
  readonly list: string
  readonly trigger: SyncTrigger
  readonly startedAt: number
  readonly finishedAt: number | null
  /** Items planned so far (known once the plan is done). */
  readonly planned: number
  /** Whether every image and project is planned. */
  readonly plannedAll: boolean
  /** The item being synced now. */
  readonly current: string | null
  readonly items: readonly SyncItemResult[]
  /** Why the run stopped early, if it did. */
  readonly error: string | null
}

export interface ListRunDeps {
  readonly images: ImageSync
  readonly projects: ProjectSync
  readonly logger: Logger
  readonly metrics: Metrics
  readonly now: () => number
  readonly backoff: Backoff
}

/** A planned tag or version, and how to sync it. */
interface Item {
  readonly name: string
  run(
    pace: (bytes: number) => Promise<void>,
    touched: Set<string>,
  ): Promise<Omit<SyncItemResult, 'name'>>
}

export type MutableRun = { -readonly [K in keyof SyncRun]: SyncRun[K] } & {
  items: SyncItemResult[]
}

export function newRun(list: string, trigger: SyncTrigger, now: number): MutableRun {
  return {
    list,
    trigger,
    startedAt: now,
    finishedAt: null,
    planned: 0,
    plannedAll: false,
    current: null,
    items: [],
    new: 0,
    updated: 0,
    unchanged: 0,
    failed: 0,
    bytes: 0,
    error: null,
  }
}

/**
 * Runs the list into `run` (updated as it goes, for the status). Resolves with
 * every digest the run found wanted (manifests, blobs, files), for pinning.
 */
export async function runList(
  deps: ListRunDeps,
  list: SyncListConfig,
  run: MutableRun,
  signal: AbortSignal,
): Promise<Set<string>> {
  const logger = deps.logger.child({ list: list.name })
  const retry = <T>(what: string, work: () => Promise<T>) =>
    withRetries(
      deps.backoff,
      work,
      (error, attempt, delayMs) => {
        logger.warn({ what, attempt, delayMs, err: error }, 'sync item failed; retrying')
      },
      signal,
    )
  const record = (result: SyncItemResult) => {
    run[result.state]++
    deps.metrics.syncItems.inc({ list: list.name, result: result.state })
    if (run.items.length < MAX_LISTED_ITEMS) run.items.push(result)
    if (result.state === 'failed')
      logger.warn({ item: result.name, error: result.error }, 'sync item failed')
  }
  const fail = (name: string, error: unknown) =>
    record({ name, state: 'failed', bytes: 0, error: message(error) })

  const items: Item[] = []
  for (const image of list.images) {
    signal.throwIfAborted()
    const label = `${image.registry ?? ''}${image.registry ? '/' : ''}${image.repository}`
    try {
      const ref = deps.images.resolve(image.registry, image.repository)
      const tags =
        literalTags(image) ?? selectTags(image, await retry(label, () => deps.images.tags(ref)))
      for (const tag of tags) items.push(imageItem(deps, ref, tag, image, retry))
    } catch (error) {
      fail(label, error)
    }
    run.planned = items.length + run.failed
  }
  const packages: SyncPackageConfig[] = [...list.packages]
  for (const file of list.requirements) {
    try {
      packages.push(...(await requirements(file)))
    } catch (error) {
      fail(file, error)
    }
  }
  for (const pkg of packages) {
    signal.throwIfAborted()
    const label = `${pkg.index ?? ''}${pkg.index ? '/' : ''}${pkg.project}`
    try {
      const ref = deps.projects.resolve(pkg.index, pkg.project)
      items.push(...(await retry(label, () => projectItems(deps, ref, pkg, retry))))
    } catch (error) {
      fail(label, error)
    }
    run.planned = items.length + run.failed
  }
  run.plannedAll = true

  const touched = new Set<string>()
  const pace = async (bytes: number) => {
    run.bytes += bytes
    deps.metrics.syncBytes.inc({ list: list.name }, bytes)
    if (list.rate <= 0) return
    // Ahead of the average rate: wait until the bytes fetched so far are due.
    const wait = run.startedAt + (run.bytes / list.rate) * 1000 - deps.now()
    if (wait > 0) await sleep(wait, undefined, { signal })
  }
  for (const item of items) {
    signal.throwIfAborted()
    run.current = item.name
    try {
      record({ name: item.name, ...(await item.run(pace, touched)) })
    } catch (error) {
      if (signal.aborted) throw error
      fail(item.name, error)
    }
  }
  run.current = null
  return touched
}

type Retry = <T>(what: string, work: () => Promise<T>) => Promise<T>

function imageItem(
  deps: ListRunDeps,
  ref: ImageRef,
  tag: string,
  image: SyncImageConfig,
  retry: Retry,
): Item {
  const name = `${ref.registry}/${ref.repository}:${tag}`
  return {
    name,
    async run(pace, touched) {
      const top = await retry(name, async () => {
        const answer = await deps.images.revalidateTag(ref, tag)
        if (answer.cache === 'stale') throw new SyncUpstreamStaleError(name)
        return answer
      })
      let bytes = 0
      const counted = async (n: number) => {
        bytes += n
        await pace(n)
      }
      const manifests: SyncManifest[] = [top]
      const children = childManifests(top, image.platforms)
      for (const digest of children)
        manifests.push(await retry(name, () => deps.images.manifest(ref, digest)))
      for (const manifest of manifests) {
        touched.add(manifest.digest)
        if (children.length > 0 && manifest === top) continue
        for (const { digest } of blobDescriptors(manifest)) {
          touched.add(digest)
          await retry(name, () => deps.images.blob(ref, digest, counted))
        }
      }
      const state =
        top.previous === undefined ? 'new' : top.previous === top.digest ? 'unchanged' : 'updated'
      return { state, bytes, digest: top.digest }
    },
  }
}

/** The versions a package selects, each an item syncing its files. */
async function projectItems(
  deps: ListRunDeps,
  ref: ProjectRef,
  pkg: SyncPackageConfig,
  retry: Retry,
): Promise<Item[]> {
  const page = await deps.projects.files(ref)
  if (page.cache === 'stale') throw new SyncUpstreamStaleError(`${ref.index}/${ref.project}`)
  const wanted = pkg.files ? picomatch(pkg.files as string[], { dot: true }) : () => true
  const files = page.files.filter((f) => wanted(f.filename))
  const listed = files.flatMap((f) =>
    f.version === undefined ? [] : [{ version: f.version, yanked: f.yanked }],
  )
  const versions = selectVersions(pkg, listed)
  if (versions.length === 0)
    throw new SyncPlanError(
      `${ref.project}: the index lists no version${pkg.versions ? ` matching ${pkg.versions}` : ''}${pkg.files ? ' with files matching the globs' : ''}`,
    )
  return versions.map((version) => {
    const name = `${ref.index}/${ref.project}==${version}`
    const chosen = files.filter(
      (f) => f.version !== undefined && pep440.valid(f.version) && pep440.eq(f.version, version),
    )
    return {
      name,
      async run(pace, touched) {
        let bytes = 0
        let unverifiable = 0
        const counted = async (n: number) => {
          bytes += n
          await pace(n)
        }
        for (const file of chosen) {
          if (file.sha256 === undefined) {
            unverifiable++
            continue
          }
          touched.add(`sha256:${file.sha256}`)
          await retry(name, () => deps.projects.file(ref, file, counted))
        }
        if (unverifiable === chosen.length)
          throw new SyncPlanError(
            `${name}: the index gives no sha256 for its files, so none can be verified`,
          )
        return { state: bytes > 0 ? 'new' : 'unchanged', bytes }
      },
    }
  })
}

/** A requirements file as packages: the newest version each line allows. */
export async function requirements(path: string): Promise<SyncPackageConfig[]> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (error) {
    throw new SyncPlanError(
      `cannot read ${path} (${(error as NodeJS.ErrnoException).code ?? String(error)})`,
    )
  }
  return text.split('\n').flatMap((line) => {
    const parsed = parseRequirementLine(line)
    return parsed
      ? [
          {
            project: parsed.project,
            latest: 1,
            ...(parsed.versions ? { versions: parsed.versions } : {}),
          },
        ]
      : []
  })
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}
