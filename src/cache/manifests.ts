/**
 * Read-through for registry manifests. A manifest is a small document stored
 * as a blob under its digest (and verified like one); a tag points at a digest
 * through a TagRecord in the metadata store.
 *
 * By digest: immutable, served from the store until evicted. Concurrent
 * requests share one upstream request per registry, repository and digest, so
 * a request routed to a registry that answers 404 slowly cannot fail another
 * registry's (or repository's) pull of the same digest.
 *
 * By tag: fresh for `tagTTL`; after that a HEAD upstream revalidates it (HEAD
 * does not count against Docker Hub's pull limit) and an unchanged digest only
 * renews the record. When every upstream fails, the last known manifest is
 * served stale. Concurrent requests for one tag share one upstream request. A
 * tag no upstream has is remembered in memory (NegativeCache) for
 * UNKNOWN_TAG_TTL_MS, never in the metadata store.
 *
 * The tag's record is the upstream's answer to an Accept of every manifest
 * type (the canonical answer). A narrower client (schema2 only, say) is served
 * from it while it is fresh and of a type the client accepts; otherwise it
 * gets the upstream's answer to its own accepted types, which may be another
 * manifest (Distribution, and Docker Hub, answer a Docker manifest list with
 * its linux/amd64 image manifest, and an OCI index with 404 MANIFEST_UNKNOWN).
 * That answer is recorded too, under the tag and the client's normalised
 * accepted types, and follows the same freshness rules, so no Accept header
 * makes more than one upstream manifest request per tag and type set per
 * tagTTL, and narrow clients get stale answers during outages as well.
 *
 * Every manifest from upstream is checked: by digest it must hash to the digest
 * asked for; by tag to the digest the upstream claims for it, when it does.
 * A mismatch counts, and the next mirror is asked.
 */
import { Readable } from 'node:stream'
import type { MetadataStore, TagRecord } from '../metadata/store.ts'
import type { Logger } from '../observability/logger.ts'
import type { Metrics } from '../observability/metrics.ts'
import type { CacheResult } from '../observability/pull-event.ts'
import type { BlobStorage } from '../storage/blob-storage.ts'
import { digestOf, isDigest, parseDigest, type Digest } from '../storage/digest.ts'
import { BlobNotFoundError, BlobTooLargeError, DigestMismatchError } from '../storage/errors.ts'
import type { Mirror } from '../upstream/mirror.ts'
import type { UpstreamPool } from '../upstream/pool.ts'
import type { AccessLog } from './access-log.ts'
import { FillFailedError, ManifestNotAcceptableError, ManifestUnknownError } from './errors.ts'
import { Freshness, type FreshnessPolicy, type Kept, type Known, type Loaded } from './freshness.ts'
import { Lru } from './lru.ts'
import { quarantine } from './quarantine.ts'
import { SingleFlight } from './single-flight.ts'

/** Largest manifest accepted from an upstream (Distribution's own limit is 4 MiB too). */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024

/** Verified manifests kept in memory (a typical manifest or index is 0.5 to 10 KB). */
export const MANIFEST_MEMORY_BYTES = 32 * 1024 * 1024

/** How long "no such tag" is remembered (at most the registry's tagTTL). */
export const UNKNOWN_TAG_TTL_MS = 60_000

/** A manifest as an upstream sent it. */
export interface RemoteManifest {
  readonly body: Buffer
  readonly contentType: string | undefined
  /** The digest the upstream claims for it, when it says. */
  readonly digest: string | undefined
  readonly mirror: Mirror
}

/** One repository's manifests upstream: the protocol's remote (docker/remote.ts) speaks the API. */
export interface ManifestRemote {
  readonly pool: UpstreamPool
  /**
   * GETs a manifest by tag or digest, from a mirror not in `exclude` (by
   * digest, a 404 asks the next mirror); ManifestUnknownError when none has it.
   */
  get(
    reference: string,
    accept: string,
    options: { readonly byDigest: boolean; readonly exclude: ReadonlySet<Mirror> },
  ): Promise<RemoteManifest>
  /**
   * The digest the upstream names for the tag without sending the manifest
   * (undefined when it does not say); ManifestUnknownError when it has no such tag.
   */
  digestOf(tag: string, accept: string): Promise<{ digest: string | undefined; upstream: string }>
}

/** Where a repository's manifests come from, and how the client asked. */
export interface ManifestSource {
  readonly remote: ManifestRemote
  readonly registry: string
  readonly repository: string
  /** The Accept sent upstream for the canonical answer (every manifest type) and by digest. */
  readonly accept: string
  readonly tagTTLMs: number
  /** A tag the upstreams no longer have keeps being served from the cache. */
  readonly keepOnNotFound: boolean
}

/** What the client can take. */
export interface ManifestNeeds {
  /** True when a manifest of this media type may be served to the client. */
  readonly acceptable: (mediaType: string) => boolean
  /**
   * True when the client accepts every manifest type, so the upstream's answer
   * is the tag's canonical one. A narrower client (say, schema2 only) may get a
   * different manifest, which must not replace the multi-arch index other
   * clients get.
   */
  readonly canonical: boolean
  /**
   * The manifest media types the client accepts, normalised (a fixed order,
   * no parameters, no other types): the Accept sent upstream for a narrower
   * client, and what its answer is recorded and single-flighted under.
   */
  readonly accept: string
}

/** How a tag is looked up: under which record name, asking upstream with which Accept. */
interface TagView {
  /** The tag, or for a narrower client the tag plus its accepted types. */
  readonly name: string
  readonly accept: string
  /** Single-flight and negative-cache key. */
  readonly key: string
}

export interface ServedManifest {
  readonly digest: string
  readonly mediaType: string
  readonly body: Buffer
  readonly cache: CacheResult
  /** The mirror asked, when one was. */
  readonly upstream: string | undefined
}

/** A tag's manifest, or the media type it has when the client does not accept it. */
type TagAnswer = ServedManifest | { readonly refused: string }

export interface ManifestCacheDeps {
  readonly blobs: BlobStorage
  readonly metadata: MetadataStore
  readonly metrics: Metrics
  readonly logger: Logger
  readonly now: () => number
  /** Where hits are recorded for LRU eviction (batched). */
  readonly accesses: AccessLog
  /** The media type of a manifest body; the protocol layer knows the formats. */
  readonly mediaTypeOf: (body: Buffer, contentType: string | undefined) => string
  /** Called after a manifest is newly stored (eviction checks). */
  readonly onStored?: (size: number) => void
}

/**
 * Between a tag and a narrower client's accepted types in the name of its
 * record: no tag contains it (the distribution spec's tag grammar is
 * `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`), so it never names a real tag.
 */
const NARROW_SEPARATOR = ';accept='

/** The tag a stored tag record's name is for (a narrower client's view names the tag first). */
export function tagOfRecordName(name: string): string {
  return name.split(NARROW_SEPARATOR, 1)[0] ?? name
}

export class ManifestCache {
  readonly #flights = new SingleFlight<ServedManifest>()
  readonly #freshness: Freshness
  readonly #memory = new Lru<Buffer>(MANIFEST_MEMORY_BYTES, (body) => body.length)
  readonly #logger: Logger

  constructor(private readonly deps: ManifestCacheDeps) {
    this.#logger = deps.logger.child({ component: 'manifests' })
    this.#freshness = new Freshness({ logger: this.#logger, now: deps.now })
  }

  /** The manifest with this digest, from the store or the upstream. */
  async byDigest(source: ManifestSource, digestInput: string): Promise<ServedManifest> {
    const digest = parseDigest(digestInput)
    const stored = await this.#readStored(digest)
    if (stored) return this.#served(digest, stored, 'hit', undefined)
    // Keyed by where it is fetched from: another registry's (or repository's) 404 is not this one's.
    const key = `digest ${source.registry}/${source.repository}@${digest}`
    return this.#flights.run(key, () => this.#fetch(source, digest, digest, source.accept))
  }

  /** The manifest a tag points at, fresh within tagTTL, revalidated after, stale when upstreams fail. */
  async byTag(source: ManifestSource, tag: string, needs: ManifestNeeds): Promise<ServedManifest> {
    const canonicalView = this.#view(source, tag, tag, source.accept)
    const canonical = await this.#freshness.read({
      key: canonicalView.key,
      what: 'manifest',
      read: () => this.#readTag(source, tag),
    })
    const usable = canonical && needs.acceptable(canonical.value.mediaType) ? canonical : undefined
    // The warm path (thousands a second) builds no policy: a fresh record of a
    // type the client takes, whose manifest is at hand, is the answer.
    const ttl = { ttlMs: source.tagTTLMs }
    if (
      usable &&
      this.#freshness.fresh(ttl, usable) &&
      // Due for its refresh ahead of the TTL: the policy's path serves it and starts one.
      !this.#freshness.due(ttl, usable) &&
      !this.#freshness.negatives.has(canonicalView.key)
    ) {
      const body = await this.#readStored(usable.value.digest)
      if (body)
        return this.#served(usable.value.digest, body, 'hit', undefined, usable.value.mediaType)
    }
    if (needs.canonical)
      return this.#answer(tag, this.#tagPolicy(source, tag, canonicalView, needs), {
        kept: canonical,
      })
    const view = this.#view(source, tag, `${tag}${NARROW_SEPARATOR}${needs.accept}`, needs.accept)
    return this.#answer(tag, this.#tagPolicy(source, tag, view, needs, usable))
  }

  /**
   * Fetches the tag's manifest from the upstream now, whatever the cached
   * record's age (a push notification said the tag moved), and records it.
   */
  async refresh(source: ManifestSource, tag: string): Promise<ServedManifest> {
    const view = this.#view(source, tag, tag, source.accept)
    this.#freshness.negatives.delete(view.key)
    const everything = { acceptable: () => true, canonical: true, accept: source.accept }
    return this.#answer(tag, this.#tagPolicy(source, tag, view, everything), { kept: undefined })
  }

  /**
   * Asks the upstream about the tag now, whatever the record's age: one
   * conditional request (a HEAD) when the cached tag is unchanged, a GET when
   * it moved or was never cached; `stale` when every upstream failed. Also
   * says which digest the tag had before (sync lists report new and updated).
   */
  async revalidate(
    source: ManifestSource,
    tag: string,
  ): Promise<ServedManifest & { readonly previous: string | undefined }> {
    const view = this.#view(source, tag, tag, source.accept)
    this.#freshness.negatives.delete(view.key)
    const kept = await this.#freshness.read({
      key: view.key,
      what: 'manifest',
      read: () => this.#readTag(source, tag),
    })
    const everything = { acceptable: () => true, canonical: true, accept: source.accept }
    const policy = { ...this.#tagPolicy(source, tag, view, everything), ttlMs: 0 }
    const served = await this.#answer(tag, policy, { kept })
    return { ...served, previous: kept?.value.digest }
  }

  /**
   * Points a tag at a manifest already in the store (an imported bundle), as
   * its upstream confirmed it at `fetchedAt`; the tag's narrower views, which
   * may name the old manifest, go.
   */
  async record(
    registry: string,
    repository: string,
    tag: string,
    manifest: { readonly digest: string; readonly mediaType: string; readonly size: number },
    fetchedAt: number,
  ): Promise<void> {
    const { metadata } = this.deps
    const previous = await metadata.getTag(registry, repository, tag)
    const updatedAt =
      previous?.digest === manifest.digest
        ? (previous.updatedAt ?? previous.fetchedAt)
        : this.deps.now()
    await metadata.putTag(registry, repository, tag, { ...manifest, fetchedAt, updatedAt })
    for (const name of (await metadata.listTags(registry, repository)).keys())
      if (name !== tag && tagOfRecordName(name) === tag)
        await metadata.deleteTag(registry, repository, name)
    this.#freshness.negatives.deletePrefix(`tag ${registry}/${repository}:${tag} `)
  }

  /** Resolves when no tag load runs (refreshes ahead of the TTL included). */
  async idle(): Promise<void> {
    await this.#freshness.idle()
  }

  /** Repositories of a registry with at least one cached tag, sorted. */
  async repositories(registry: string): Promise<string[]> {
    return this.deps.metadata.listRepositories(registry)
  }

  async #answer(
    tag: string,
    policy: FreshnessPolicy<TagRecord, TagAnswer>,
    known?: Known<TagRecord>,
  ): Promise<ServedManifest> {
    const { served } = await this.#freshness.readThrough(policy, known)
    if ('refused' in served) throw new ManifestNotAcceptableError(tag, served.refused)
    return served
  }

  /**
   * The tag as `view` sees it: its record while fresh, revalidated by a HEAD
   * after, fetched when there is none. `fallback` is another record the client
   * may be served stale (a narrower client's canonical record of a type it accepts).
   */
  #tagPolicy(
    source: ManifestSource,
    tag: string,
    view: TagView,
    needs: ManifestNeeds,
    fallback?: Kept<TagRecord>,
  ): FreshnessPolicy<TagRecord, TagAnswer> {
    const { metadata } = this.deps
    const { registry, repository } = source
    return {
      key: view.key,
      ttlMs: source.tagTTLMs,
      what: 'manifest',
      read: () => this.#readTag(source, view.name),
      write: (kept) =>
        metadata.putTag(registry, repository, view.name, {
          ...kept.value,
          fetchedAt: kept.fetchedAt,
        }),
      remove: () => metadata.deleteTag(registry, repository, view.name),
      serve: async ({ value }, cache) => {
        // The upstream's answer for this view is of a type the client does not take: so it stays.
        if (!needs.acceptable(value.mediaType)) return { refused: value.mediaType }
        const body = await this.#readStored(value.digest)
        return body && this.#served(value.digest, body, cache, undefined, value.mediaType)
      },
      load: async (previous) =>
        (previous && (await this.#revalidate(source, tag, view, needs, previous))) ??
        (await this.#fetchTag(source, tag, view, needs, previous)),
      staleable: (kept) => needs.acceptable(kept.value.mediaType),
      fallback,
      refreshAhead: true,
      notFound: {
        ttlMs: Math.min(UNKNOWN_TAG_TTL_MS, source.tagTTLMs),
        matches: (error) => error instanceof ManifestUnknownError,
        error: () => new ManifestUnknownError(repository, tag),
        keep: source.keepOnNotFound,
      },
    }
  }

  /** Asks the upstream for the tag's digest: unchanged renews the record; undefined when it must be fetched. */
  async #revalidate(
    source: ManifestSource,
    tag: string,
    view: TagView,
    needs: ManifestNeeds,
    previous: Kept<TagRecord>,
  ): Promise<Loaded<TagRecord, TagAnswer> | undefined> {
    const head = await source.remote.digestOf(tag, view.accept)
    const record = previous.value
    if (head.digest !== record.digest) return undefined
    const kept = { fetchedAt: this.deps.now(), value: record }
    const upstream = head.upstream
    if (!needs.acceptable(record.mediaType))
      return { kept, cache: 'revalidated', served: { refused: record.mediaType }, upstream }
    const body = await this.#readStored(record.digest)
    if (!body) return undefined
    const served = this.#served(record.digest, body, 'revalidated', upstream, record.mediaType)
    return { kept, cache: 'revalidated', served, upstream }
  }

  /**
   * GETs the tag with the view's Accept; its answer is recorded under the
   * view's name, with when the tag came to point at its digest (kept from
   * `previous` while the digest is the same).
   */
  async #fetchTag(
    source: ManifestSource,
    tag: string,
    view: TagView,
    needs: ManifestNeeds,
    previous?: Kept<TagRecord>,
  ): Promise<Loaded<TagRecord, TagAnswer>> {
    const fetched = await this.#fetch(source, tag, undefined, view.accept)
    const { digest, mediaType } = fetched
    const fetchedAt = this.deps.now()
    const updatedAt =
      previous?.value.digest === digest
        ? (previous.value.updatedAt ?? previous.value.fetchedAt)
        : fetchedAt
    const size = fetched.body.length
    const kept = { fetchedAt, value: { digest, mediaType, size, fetchedAt, updatedAt } }
    const served = needs.acceptable(mediaType) ? fetched : { refused: mediaType }
    return { kept, cache: 'miss', served, upstream: fetched.upstream }
  }

  /** The tag record stored under `name` (a tag, or a narrower view of one). */
  async #readTag(source: ManifestSource, name: string): Promise<Kept<TagRecord> | undefined> {
    const record = await this.deps.metadata.getTag(source.registry, source.repository, name)
    return record && { fetchedAt: record.fetchedAt, value: record }
  }

  #view(source: ManifestSource, tag: string, name: string, accept: string): TagView {
    return { name, accept, key: `tag ${source.registry}/${source.repository}:${tag} ${accept}` }
  }

  /**
   * GETs a manifest by tag or digest, checks it against `expected` (by digest)
   * or the digest the upstream claims (by tag), and stores it. A mirror
   * that sends a mismatch is not asked again for this manifest.
   */
  async #fetch(
    source: ManifestSource,
    reference: string,
    expected: Digest | undefined,
    accept: string,
  ): Promise<ServedManifest> {
    const { pool } = source.remote
    const exclude = new Set<Mirror>()
    for (;;) {
      const doc = await source.remote.get(reference, accept, {
        byDigest: expected !== undefined,
        exclude,
      })
      const actual = digestOf(doc.body)
      const claimed = expected ?? doc.digest
      if (claimed === undefined || !isDigest(claimed) || claimed === actual) {
        const mediaType = this.deps.mediaTypeOf(doc.body, doc.contentType)
        await this.#store(actual, doc.body)
        return this.#served(actual, doc.body, 'miss', doc.mirror.name, mediaType)
      }
      this.deps.metrics.digestMismatches.inc({ pool: pool.name, upstream: doc.mirror.name })
      pool.recordBodyFailure(doc.mirror, 'digest_mismatch')
      this.#logger.warn(
        { upstream: doc.mirror.name, reference, expected: claimed, actual },
        'upstream manifest does not match its digest; trying another mirror',
      )
      exclude.add(doc.mirror)
      if (exclude.size >= pool.mirrors.length)
        throw new FillFailedError(claimed, 'no upstream sent a manifest matching its digest')
    }
  }

  #served(
    digest: string,
    body: Buffer,
    cache: CacheResult,
    upstream: string | undefined,
    mediaType?: string,
  ): ServedManifest {
    return {
      digest,
      body,
      cache,
      upstream,
      mediaType: mediaType ?? this.deps.mediaTypeOf(body, undefined),
    }
  }

  /**
   * The stored manifest, verified; undefined when absent or rotten (then
   * removed). Verified bytes stay in memory, so a busy tag is not read from
   * disk and hashed on every request.
   */
  async #readStored(digest: string): Promise<Buffer | undefined> {
    const held = this.#memory.get(digest)
    if (held) {
      this.deps.accesses.record(digest, this.deps.now())
      return held
    }
    try {
      const body = await this.deps.blobs.readSmall(digest, MAX_MANIFEST_BYTES)
      this.#memory.set(digest, body)
      this.deps.accesses.record(digest, this.deps.now())
      return body
    } catch (error) {
      if (error instanceof BlobNotFoundError) return undefined
      if (!(error instanceof DigestMismatchError || error instanceof BlobTooLargeError)) throw error
      await quarantine(this.deps, digest)
      return undefined
    }
  }

  async #store(digest: Digest, body: Buffer): Promise<void> {
    this.#memory.set(digest, body)
    try {
      if (await this.deps.blobs.has(digest)) return
      await this.deps.blobs.put(digest, Readable.from([body]))
      await this.deps.metadata.putBlob(digest, body.length, this.deps.now())
      this.deps.onStored?.(body.length)
    } catch (error) {
      // The client still gets the verified manifest; it is fetched again next time.
      this.deps.metrics.storageWriteErrors.inc()
      this.#logger.warn({ err: error, digest }, 'could not store a manifest')
    }
  }
}
