/**
 * The one read-through freshness engine behind every cached upstream answer
 * that is not addressed by digest (tag records, index pages, tag lists, the
 * project list, legacy JSON, files without a hash). Each of those is a small
 * FreshnessPolicy; this file alone decides hit, miss, revalidated and stale:
 *
 * - a kept record younger than the policy's TTL is served (a hit) when it
 *   still can be (`serve`: the blob behind it may have been evicted); past
 *   REFRESH_AHEAD_FRACTION of its TTL, a policy that allows it (`refreshAhead`)
 *   also starts the load in the background, so a record pulled often is
 *   renewed before it expires and no client waits on its revalidation;
 * - otherwise one load per key runs (`load(previous)` revalidates with what
 *   the previous record holds: an ETag, a digest to HEAD) and concurrent
 *   callers wait for it;
 * - a load that ends in a "not found" the policy names is remembered in
 *   memory (NegativeCache) for the policy's negative TTL and drops the record,
 *   unless the policy keeps it (`onUpstreamNotFound: keep`): then the kept
 *   record is served stale, without asking again for the negative TTL;
 * - a load that fails because the upstreams could not answer serves the kept
 *   record stale, without writing anything;
 * - a metadata store that fails to read or write is logged once, with the
 *   key (the store counts it in pullthrough_metadata_errors_total itself),
 *   and the answer comes from what is known or from the upstream.
 */
import type { Logger } from '../observability/logger.ts'
import type { CacheResult } from '../observability/pull-event.ts'
import { isUpstreamFailure } from './errors.ts'
import { NegativeCache } from './negative-cache.ts'

/** Share of its TTL after which a hit also revalidates the record in the background. */
export const REFRESH_AHEAD_FRACTION = 0.8

/** A record as kept in the metadata store: a value and when the upstream last gave or confirmed it. */
export interface Kept<V> {
  readonly fetchedAt: number
  readonly value: V
  /** The mirror it came from, when known. */
  readonly upstream?: string | undefined
}

/** What a load produced. */
export interface Loaded<V, T> {
  readonly cache: 'miss' | 'revalidated'
  /**
   * The record to keep (written by the engine). A promise when it exists only
   * once a stream being served has been stored; undefined when it could not
   * be kept (callers that waited then load themselves).
   */
  readonly kept: Kept<V> | Promise<Kept<V> | undefined>
  /** What the loading caller serves, when not served from `kept` (bytes in hand, a teed stream). */
  readonly served?: T
  /** The mirror that answered. */
  readonly upstream: string | undefined
}

/** What a "not found" from the upstreams means to a policy. */
export interface NotFoundRule {
  /** How long it is remembered in memory. */
  readonly ttlMs: number
  /** True for the error a load throws when the upstreams do not have it. */
  readonly matches: (error: unknown) => boolean
  /** The error thrown while it is remembered. */
  readonly error: () => Error
  /** Serve a kept record stale instead of dropping it: the upstream deleted what the cache keeps. */
  readonly keep?: boolean
}

export interface FreshnessPolicy<V, T> {
  /** One flight, one negative answer, one log line per key. */
  readonly key: string
  readonly ttlMs: number
  /** What is kept, as log lines name it ("serving the cached manifest stale"). */
  readonly what: string
  read(): Promise<Kept<V> | undefined>
  write(kept: Kept<V>): Promise<void>
  /** Drops the kept record (the upstreams no longer have it). */
  remove?(): Promise<void>
  /** What a kept record serves; undefined when it no longer can (its blob is gone). */
  serve(kept: Kept<V>, cache: CacheResult): Promise<T | undefined> | T | undefined
  /** Asks the upstream; `previous` (possibly expired) is what to revalidate. */
  load(previous: Kept<V> | undefined): Promise<Loaded<V, T>>
  /** Whether a record may be served stale to this caller (default: yes). */
  staleable?(kept: Kept<V>): boolean
  /** Served stale when the key's own record cannot be (a tag's canonical record for a narrower client). */
  readonly fallback?: Kept<V> | undefined
  /**
   * A hit past REFRESH_AHEAD_FRACTION of the TTL revalidates in the background.
   * Only for loads whose result needs no reader (not a stream to tee).
   */
  readonly refreshAhead?: boolean
  /** Errors after which a kept record is served stale (default: isUpstreamFailure). */
  staleOn?(error: unknown): boolean
  readonly notFound?: NotFoundRule
}

export interface Served<T> {
  readonly served: T
  readonly cache: CacheResult
  readonly upstream: string | undefined
}

/** Records already read by the caller (to avoid reading them twice). */
export interface Known<V> {
  readonly kept: Kept<V> | undefined
}

export interface FreshnessDeps {
  readonly logger: Logger
  readonly now: () => number
}

/** How a load ended, for the callers that waited on it. */
interface Outcome<V> {
  readonly kept: Kept<V> | undefined
  readonly cache: CacheResult
  readonly upstream: string | undefined
}

/** What the loading caller gets: its own served value, or none (then it serves the outcome). */
interface Lead<V, T> {
  readonly served: Served<T> | undefined
  readonly outcome: Promise<Outcome<V>>
}

export class Freshness {
  readonly #flights = new Map<string, Promise<Outcome<unknown>>>()
  /** Keys the upstreams do not have, each for its policy's negative TTL. */
  readonly negatives: NegativeCache

  constructor(private readonly deps: FreshnessDeps) {
    this.negatives = new NegativeCache(deps.now)
  }

  /** The policy's value: fresh, revalidated, loaded, or stale when the upstreams fail. */
  async readThrough<V, T>(policy: FreshnessPolicy<V, T>, known?: Known<V>): Promise<Served<T>> {
    if (policy.notFound && this.negatives.has(policy.key)) return this.#gone(policy, known)
    const kept = known ? known.kept : await this.read(policy)
    if (kept && this.fresh(policy, kept)) {
      const served = await policy.serve(kept, 'hit')
      if (served !== undefined) {
        if (policy.refreshAhead && this.due(policy, kept)) this.#refresh(policy, kept)
        return { served, cache: 'hit', upstream: kept.upstream }
      }
    }
    const running = this.#flights.get(policy.key) as Promise<Outcome<V>> | undefined
    if (running) {
      const outcome = await running
      const served = outcome.kept && (await policy.serve(outcome.kept, outcome.cache))
      if (served !== undefined) return { served, cache: outcome.cache, upstream: outcome.upstream }
      // The load kept nothing this caller can serve (its stream could not be stored): load again.
    }
    const lead = await this.#lead(policy, kept)
    if (lead.served) return lead.served
    const outcome = await lead.outcome
    const served = outcome.kept && (await policy.serve(outcome.kept, outcome.cache))
    if (served === undefined)
      throw new Error(`${policy.what} ${policy.key} was loaded but not kept`)
    return { served, cache: outcome.cache, upstream: outcome.upstream }
  }

  /** The kept record; undefined (logged) when the metadata store fails. */
  async read<V>(
    policy: Pick<FreshnessPolicy<V, unknown>, 'key' | 'what' | 'read'>,
  ): Promise<Kept<V> | undefined> {
    try {
      return await policy.read()
    } catch (error) {
      this.#storeFailed(policy, error, `could not read the cached ${policy.what}`)
      return undefined
    }
  }

  /** True while `kept` is younger than the policy's TTL. */
  fresh(policy: { readonly ttlMs: number }, kept: { readonly fetchedAt: number }): boolean {
    return this.deps.now() - kept.fetchedAt < policy.ttlMs
  }

  /** True once `kept` is past REFRESH_AHEAD_FRACTION of the policy's TTL (a hit then refreshes it). */
  due(policy: { readonly ttlMs: number }, kept: { readonly fetchedAt: number }): boolean {
    return this.deps.now() - kept.fetchedAt >= policy.ttlMs * REFRESH_AHEAD_FRACTION
  }

  /** Resolves when no load is running (background refreshes included). */
  async idle(): Promise<void> {
    while (this.#flights.size > 0) await Promise.allSettled([...this.#flights.values()])
  }

  /** A background load of a record still fresh; one per key, its failures logged. */
  #refresh<V, T>(policy: FreshnessPolicy<V, T>, kept: Kept<V>): void {
    if (this.#flights.has(policy.key)) return
    this.#lead(policy, kept)
      .then((lead) => lead.outcome)
      .catch((error: unknown) => {
        this.deps.logger.info(
          { key: policy.key, err: error },
          `could not refresh the cached ${policy.what} ahead of its TTL`,
        )
      })
  }

  /** Runs the one load of the policy's key; callers arriving meanwhile wait on its outcome. */
  async #lead<V, T>(
    policy: FreshnessPolicy<V, T>,
    previous: Kept<V> | undefined,
  ): Promise<Lead<V, T>> {
    const loading = this.#load(policy, previous)
    const outcome = loading.then(async ({ loaded }): Promise<Outcome<V>> => {
      // A record that could not be stored is not kept; the policy has said why.
      const kept = await Promise.resolve(loaded.kept).catch(() => undefined)
      if (kept && loaded.cache !== 'stale') await this.#write(policy, kept)
      return { kept, cache: loaded.cache, upstream: loaded.upstream }
    })
    const flight = outcome as Promise<Outcome<unknown>>
    this.#flights.set(policy.key, flight)
    const forget = () => {
      if (this.#flights.get(policy.key) === flight) this.#flights.delete(policy.key)
    }
    outcome.then(forget, forget)
    const { loaded, served } = await loading
    // A record still being stored (a stream teed to disk) is not waited for by the loader.
    if (served !== undefined && loaded.kept instanceof Promise)
      return { served: { served, cache: loaded.cache, upstream: loaded.upstream }, outcome }
    await outcome
    if (served !== undefined)
      return { served: { served, cache: loaded.cache, upstream: loaded.upstream }, outcome }
    return { served: undefined, outcome }
  }

  /** The policy's load; on failure the stale record, or the error (a "not found" remembered). */
  async #load<V, T>(
    policy: FreshnessPolicy<V, T>,
    previous: Kept<V> | undefined,
  ): Promise<{ loaded: StaleOr<V>; served: T | undefined }> {
    try {
      const loaded = await policy.load(previous)
      return { loaded, served: loaded.served }
    } catch (error) {
      if (policy.notFound?.matches(error)) {
        const kept = policy.notFound.keep ? await this.#keptAnyway(policy, previous) : undefined
        if (kept) return kept
        await this.#forget(policy, previous)
        throw error
      }
      const stale = await this.#stale(policy, previous, error)
      if (!stale) throw error
      return stale
    }
  }

  /** The record served when the upstreams failed, with what it serves; undefined when none can be. */
  async #stale<V, T>(
    policy: FreshnessPolicy<V, T>,
    previous: Kept<V> | undefined,
    error: unknown,
  ): Promise<{ loaded: StaleOr<V>; served: T } | undefined> {
    if (!(policy.staleOn ?? isUpstreamFailure)(error)) return undefined
    const own = previous && (policy.staleable?.(previous) ?? true) ? previous : undefined
    const kept = own ?? policy.fallback
    if (!kept) return undefined
    const served = await policy.serve(kept, 'stale')
    if (served === undefined) return undefined
    this.deps.logger.warn(
      { key: policy.key, err: error },
      `every upstream failed; serving the cached ${policy.what} stale`,
    )
    return { loaded: { cache: 'stale', kept, upstream: kept.upstream }, served }
  }

  /** A key the upstreams said they do not have, asked again within the negative TTL. */
  async #gone<V, T>(policy: FreshnessPolicy<V, T>, known?: Known<V>): Promise<Served<T>> {
    const notFound = policy.notFound
    const kept = notFound?.keep ? (known ? known.kept : await this.read(policy)) : undefined
    const served = kept && (await policy.serve(kept, 'stale'))
    if (kept === undefined || served === undefined)
      throw notFound?.error() ?? new Error(`${policy.key} is not found`)
    return { served, cache: 'stale', upstream: kept.upstream }
  }

  /** The kept record served stale after a "not found" (onUpstreamNotFound: keep), remembered as gone upstream. */
  async #keptAnyway<V, T>(
    policy: FreshnessPolicy<V, T>,
    previous: Kept<V> | undefined,
  ): Promise<{ loaded: StaleOr<V>; served: T } | undefined> {
    const own = previous && (policy.staleable?.(previous) ?? true) ? previous : undefined
    const kept = own ?? policy.fallback
    const served = kept && (await policy.serve(kept, 'stale'))
    if (kept === undefined || served === undefined) return undefined
    if (policy.notFound) this.negatives.add(policy.key, policy.notFound.ttlMs)
    this.deps.logger.warn(
      { key: policy.key },
      `the upstream no longer has the ${policy.what}; serving the cached one (onUpstreamNotFound: keep)`,
    )
    return { loaded: { cache: 'stale', kept, upstream: kept.upstream }, served }
  }

  async #forget<V>(policy: FreshnessPolicy<V, unknown>, previous: Kept<V> | undefined) {
    if (policy.notFound) this.negatives.add(policy.key, policy.notFound.ttlMs)
    if (!previous || !policy.remove) return
    try {
      await policy.remove()
    } catch (error) {
      this.#storeFailed(policy, error, `could not delete the cached ${policy.what}`)
    }
  }

  async #write<V>(policy: FreshnessPolicy<V, unknown>, kept: Kept<V>): Promise<void> {
    try {
      await policy.write(kept)
    } catch (error) {
      this.#storeFailed(policy, error, `could not store the ${policy.what}`)
    }
  }

  /** A metadata failure: the store counted it; it is logged here, once, with the key. */
  #storeFailed(policy: { readonly key: string }, error: unknown, msg: string): void {
    this.deps.logger.warn({ key: policy.key, err: error }, msg)
  }
}

/** A load's result, or the stale record served in its place. */
type StaleOr<V> =
  | Loaded<V, unknown>
  | { readonly cache: 'stale'; readonly kept: Kept<V>; readonly upstream: string | undefined }
