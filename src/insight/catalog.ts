/**
 * The catalog of what is on disk, one row per stored blob: its record (size,
 * first cached, last accessed, hits), what it is (artifact-kind.ts), which
 * repositories and tags or projects and files it was pulled through, and per
 * tag or project page whether the cache still holds it fresh. A reference is
 * stale when the upstream has not confirmed it for longer than its TTL:
 * nobody asked since, or every mirror failed when asked, and the cache served
 * what it had (the statistics count those pulls as `stale`).
 */
import type { BlobRecord, MetadataStore } from '../metadata/store.ts'
import type { ArtifactReference, StatsProtocol } from '../metadata/statistics.ts'
import {
  MAX_SNIFFED_JSON_BYTES,
  SNIFF_BYTES,
  looksLikeJson,
  typeOfContent,
  typeOfFileName,
  type ArtifactKind,
} from './artifact-kind.ts'

/** Blobs read at once to tell their type. */
const SNIFF_CONCURRENCY = 16

export interface CatalogDeps {
  readonly metadata: Pick<MetadataStore, 'references' | 'getTag' | 'readDocument' | 'pinned'>
  /** Up to `bytes` from the start of a stored blob, unverified; undefined when it is not on disk. */
  readonly readHead: (digest: string, bytes: number) => Promise<Buffer | undefined>
  /** How long a registry's tags or an index's pages stay fresh (ms); undefined for a pool no longer configured. */
  readonly ttl: (protocol: StatsProtocol, pool: string) => number | undefined
  readonly now: () => number
}

export interface CatalogReference {
  readonly protocol: StatsProtocol
  readonly pool: string
  /** Repository or project. */
  readonly name: string
  /** Tag or file name; null when pulled by digest. */
  readonly reference: string | null
  /** When the upstream last gave or confirmed the tag or the project's page; null when not cached. */
  readonly fetchedAt: number | null
  /** Older than the registry's tagTTL or the index's TTL; null when unknown. */
  readonly stale: boolean | null
  /** Docker tags: whether the tag still points at this digest; null for the others. */
  readonly current: boolean | null
}

export interface CatalogRow {
  readonly digest: string
  readonly size: number
  /** What it is; `missing` when the record outlived the file (the next pull fetches it again). */
  readonly kind: ArtifactKind | 'missing'
  readonly mediaType: string | null
  readonly firstCached: number
  readonly lastAccessed: number
  readonly hits: number
  /** Never evicted nor deleted by retention. */
  readonly pinned: boolean
  /** A tag or page that points at it (and still does) is stale. */
  readonly stale: boolean
  readonly references: readonly CatalogReference[]
}

export async function catalogRows(
  deps: CatalogDeps,
  blobs: readonly BlobRecord[],
): Promise<CatalogRow[]> {
  const [references, pins] = await Promise.all([
    deps.metadata.references(blobs.map((b) => b.digest)),
    deps.metadata.pinned(),
  ])
  const pages = new Map<string, Promise<number | null>>()
  const pageFetchedAt = (index: string, project: string) => {
    const key = `${index}\u001f${project}`
    let fetched = pages.get(key)
    if (fetched === undefined) {
      fetched = deps.metadata.readDocument(index, project).then((d) => d?.record.fetchedAt ?? null)
      pages.set(key, fetched)
    }
    return fetched
  }
  const row = async (blob: BlobRecord): Promise<CatalogRow> => {
    const refs = references.get(blob.digest) ?? []
    const [type, states] = await Promise.all([
      artifactType(deps, blob, refs),
      Promise.all(refs.map((r) => referenceState(deps, blob.digest, r, pageFetchedAt))),
    ])
    return {
      digest: blob.digest,
      size: blob.size,
      kind: type?.kind ?? 'missing',
      mediaType: type?.mediaType ?? null,
      firstCached: blob.createdAt,
      lastAccessed: blob.lastAccess,
      hits: blob.hits,
      pinned: pins.has(blob.digest),
      stale: states.some((s) => s.stale === true && s.current !== false),
      references: states,
    }
  }
  const rows: CatalogRow[] = []
  for (let i = 0; i < blobs.length; i += SNIFF_CONCURRENCY)
    rows.push(...(await Promise.all(blobs.slice(i, i + SNIFF_CONCURRENCY).map(row))))
  return rows
}

async function artifactType(
  deps: CatalogDeps,
  blob: BlobRecord,
  refs: readonly ArtifactReference[],
) {
  const head = await deps.readHead(blob.digest, SNIFF_BYTES)
  if (head === undefined) return undefined
  for (const ref of refs) {
    const named =
      ref.protocol === 'pypi' && ref.reference ? typeOfFileName(ref.reference) : undefined
    if (named) return named
  }
  if (blob.size > head.length && blob.size <= MAX_SNIFFED_JSON_BYTES && looksLikeJson(head)) {
    const whole = await deps.readHead(blob.digest, blob.size)
    if (whole === undefined) return undefined
    return typeOfContent(whole, blob.size)
  }
  return typeOfContent(head, blob.size)
}

async function referenceState(
  deps: CatalogDeps,
  digest: string,
  ref: ArtifactReference,
  pageFetchedAt: (index: string, project: string) => Promise<number | null>,
): Promise<CatalogReference> {
  const base = {
    protocol: ref.protocol,
    pool: ref.pool,
    name: ref.subject,
    reference: ref.reference ?? null,
  }
  const ttl = deps.ttl(ref.protocol, ref.pool)
  const stale = (fetchedAt: number | null) =>
    fetchedAt === null || ttl === undefined ? null : deps.now() - fetchedAt > ttl
  if (ref.protocol === 'pypi') {
    const fetchedAt = await pageFetchedAt(ref.pool, ref.subject)
    return { ...base, fetchedAt, stale: stale(fetchedAt), current: null }
  }
  if (ref.reference === undefined) return { ...base, fetchedAt: null, stale: null, current: null }
  const tag = await deps.metadata.getTag(ref.pool, ref.subject, ref.reference)
  const fetchedAt = tag?.fetchedAt ?? null
  return { ...base, fetchedAt, stale: stale(fetchedAt), current: tag?.digest === digest }
}
