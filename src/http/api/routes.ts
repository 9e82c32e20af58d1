/**
 * The JSON API under /-/api/v1/ (docs/api.md): statistics, recent pull
 * events, upstream health and what is on disk. Read-only; when `admin.token`
 * is set every request needs it as a Bearer token. Lists are paged with
 * `limit` and `offset` and answer `{ items, total, offset, next }`, `next`
 * being the offset of the following page or null.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { z } from 'zod'
import { catalogRows, type CatalogDeps } from '../../insight/catalog.ts'
import { SORT_KEYS, SUMMARY_WINDOWS, type Statistics } from '../../insight/statistics.ts'
import { DAY_MS } from '../../metadata/statistics.ts'
import type { BlobRecord, MetadataStore } from '../../metadata/store.ts'
import type { EventRing } from '../../observability/event-ring.ts'
import type { OfflineSwitch } from '../../upstream/offline-switch.ts'
import { GcBusyError, type GarbageCollector } from '../../cache/gc.ts'
import { ScrubBusyError, type Scrubber } from '../../cache/scrub.ts'
import { MIN_SCRUB_RATE } from '../../config/schema.ts'
import { SyncBusyError, SyncUnknownListError } from '../../sync/errors.ts'
import type { SyncJobs } from '../../sync/jobs.ts'
import { parseSize } from '../../config/units.ts'
import type { MirrorSnapshot } from '../../upstream/pool.ts'
import { adminConfigured, adminGuard, type AdminCheck } from './access.ts'
import { ApiBadQueryError, ApiConflictError, ApiForbiddenError } from './errors.ts'

export const API_PREFIX = '/-/api/v1'
/** What a pin names: a blob by its SHA-256 digest. */
const SHA256_DIGEST = /^sha256:[a-f0-9]{64}$/
/** Items per page at most. */
export const MAX_PAGE_SIZE = 500
const DEFAULT_PAGE_SIZE = 50
/** Blob records read at most to answer `artifacts` and `unused` (least recently used first). */
export const MAX_BLOBS_SCANNED = 100_000

const WINDOWS = { ...SUMMARY_WINDOWS, '30d': 30 * DAY_MS, '90d': 90 * DAY_MS } as const
const windowParam = z.enum(Object.keys(WINDOWS) as [keyof typeof WINDOWS]).default('24h')
const page = {
  limit: z.coerce.number().int().min(1).max(MAX_PAGE_SIZE).default(DEFAULT_PAGE_SIZE),
  offset: z.coerce.number().int().min(0).default(0),
}
const result = z.enum(['hit', 'miss', 'stale', 'revalidated'])

const subjectsQuery = z.strictObject({
  sort: z.enum(SORT_KEYS as [string, ...string[]]).default('pulls'),
  prefix: z.string().min(1).max(512).optional(),
  rollup: z.enum(['subject', 'namespace']).default('subject'),
  window: windowParam,
  ...page,
})

export interface Snapshots {
  snapshot(): MirrorSnapshot[]
}

export interface ApiDeps {
  /** `admin.token`: required as a Bearer token when set. */
  readonly token: string | undefined
  /** With auth on: who else is an admin (auth.admins). */
  readonly admins?: AdminCheck | undefined
  /** `storage.maxSize` */
  readonly maxSize: number
  readonly statistics: Statistics
  readonly events: EventRing
  readonly registries: readonly Snapshots[]
  readonly indexes: readonly Snapshots[]
  readonly fileHosts: readonly Snapshots[]
  readonly metadata: Pick<MetadataStore, 'blobTotals' | 'leastRecentlyUsed' | 'setPinned'> &
    CatalogDeps['metadata']
  readonly readHead: CatalogDeps['readHead']
  readonly ttl: CatalogDeps['ttl']
  readonly offline: OfflineSwitch
  readonly scrubber: Pick<Scrubber, 'status' | 'start'>
  readonly gc: Pick<GarbageCollector, 'run'>
  readonly sync: Pick<SyncJobs, 'status' | 'start'>
  readonly now: () => number
}

export function registerApi(app: FastifyInstance, deps: ApiDeps): void {
  const { statistics } = deps
  const route = { config: { protocol: 'api' } }

  void app.register(
    (api, _options, done) => {
      api.addHook('onRequest', adminGuard(deps.token, 'bearer', deps.admins))

      api.get('/summary', route, async (request) => {
        parse(z.strictObject({}), request.query)
        const [windows, disk] = await Promise.all([
          statistics.summary(),
          deps.metadata.blobTotals(),
        ])
        return {
          windows,
          disk: { usedBytes: disk.bytes, maxBytes: deps.maxSize, artifacts: disk.count },
        }
      })

      for (const [path, protocol] of [
        ['/repositories', 'docker'],
        ['/projects', 'pypi'],
      ] as const) {
        api.get(path, route, async (request) => {
          const query = parse(subjectsQuery, request.query)
          const { rows, total } = await statistics.subjects({
            protocol,
            prefix: query.prefix,
            rollup: query.rollup,
            sort: query.sort as (typeof SORT_KEYS)[number],
            windowMs: WINDOWS[query.window],
            limit: query.limit,
            offset: query.offset,
          })
          return paged(rows, total, query)
        })
      }

      api.get('/series', route, async (request) => {
        const query = parse(z.strictObject({ window: windowParam }), request.query)
        return { items: await statistics.series(WINDOWS[query.window]) }
      })

      api.get('/events', route, (request) => {
        const query = parse(
          z.strictObject({
            protocol: z.enum(['docker', 'pypi']).optional(),
            repository: z.string().min(1).optional(),
            project: z.string().min(1).optional(),
            result: result.optional(),
            limit: page.limit,
          }),
          request.query,
        )
        const items = deps.events.recent({
          protocol: query.protocol,
          subject: query.repository ?? query.project,
          cache: query.result,
          limit: query.limit,
        })
        return Promise.resolve({ items })
      })

      api.get('/offline', route, (request) => {
        parse(z.strictObject({}), request.query)
        return Promise.resolve({ offline: deps.offline.on })
      })

      api.put('/offline', route, (request) => {
        // Reads may be open to every client; a change never is.
        if (!adminConfigured(deps.token, deps.admins)) throw new ApiForbiddenError()
        parse(z.strictObject({}), request.query)
        const body = z.strictObject({ offline: z.boolean() }).safeParse(request.body)
        if (!body.success)
          throw new ApiBadQueryError(
            'the body must be JSON: {"offline": true} or {"offline": false}',
          )
        deps.offline.set(body.data.offline, `api from ${request.ip}`)
        return Promise.resolve({ offline: deps.offline.on })
      })

      api.get('/verify', route, (request) => {
        parse(z.strictObject({}), request.query)
        return Promise.resolve(deps.scrubber.status())
      })

      api.post('/verify', route, async (request, reply) => {
        if (!adminConfigured(deps.token, deps.admins)) throw new ApiForbiddenError()
        parse(z.strictObject({}), request.query)
        const rate = scrubRate(request.body)
        try {
          const status = await deps.scrubber.start('api', rate)
          return await reply.code(202).send(status)
        } catch (error) {
          if (error instanceof ScrubBusyError) throw new ApiConflictError(error.message)
          throw error
        }
      })

      api.get('/sync', route, async (request) => {
        const query = parse(z.strictObject({ list: z.string().min(1).optional() }), request.query)
        return { items: await syncCall(() => deps.sync.status(query.list ? [query.list] : [])) }
      })

      api.post('/sync', route, async (request, reply) => {
        if (!adminConfigured(deps.token, deps.admins)) throw new ApiForbiddenError()
        parse(z.strictObject({}), request.query)
        const body = z
          .strictObject({ lists: z.array(z.string().min(1)).max(100).default([]) })
          .optional()
          .safeParse(request.body ?? undefined)
        if (!body.success)
          throw new ApiBadQueryError('the body must be empty or JSON: {"lists": ["name", ...]}')
        const items = await syncCall(() => deps.sync.start(body.data?.lists ?? [], 'api'))
        return reply.code(202).send({ items })
      })

      api.get('/pins', route, async (request) => {
        parse(z.strictObject({}), request.query)
        return { items: [...(await deps.metadata.pinned())].sort() }
      })

      const pinRoute = async (request: FastifyRequest, pinned: boolean) => {
        if (!adminConfigured(deps.token, deps.admins)) throw new ApiForbiddenError()
        parse(z.strictObject({}), request.query)
        const { digest } = request.params as { digest: string }
        if (!SHA256_DIGEST.test(digest))
          throw new ApiBadQueryError('digest: must be sha256: and 64 lowercase hex digits')
        await deps.metadata.setPinned(digest, pinned)
        return { digest, pinned }
      }
      api.put('/pins/:digest', route, (request) => pinRoute(request, true))
      api.delete('/pins/:digest', route, (request) => pinRoute(request, false))

      api.post('/gc', route, async (request) => {
        if (!adminConfigured(deps.token, deps.admins)) throw new ApiForbiddenError()
        parse(z.strictObject({}), request.query)
        const body = z
          .strictObject({ dryRun: z.boolean().default(false) })
          .optional()
          .safeParse(request.body ?? undefined)
        if (!body.success)
          throw new ApiBadQueryError('the body must be empty or JSON: {"dryRun": true}')
        try {
          return await deps.gc.run({ dryRun: body.data?.dryRun ?? false })
        } catch (error) {
          if (error instanceof GcBusyError) throw new ApiConflictError(error.message)
          throw error
        }
      })

      api.get('/upstreams', route, (request) => {
        parse(z.strictObject({}), request.query)
        const items = upstreamHealth(deps)
        return Promise.resolve({ items })
      })

      api.get('/artifacts', route, async (request) => {
        const query = parse(
          z.strictObject({
            sort: z.enum(['last', 'size', 'first']).default('last'),
            digest: z.string().min(1).optional(),
            ...page,
          }),
          request.query,
        )
        const blobs = (await deps.metadata.leastRecentlyUsed(MAX_BLOBS_SCANNED)).filter(
          (b) => query.digest === undefined || b.digest.startsWith(query.digest),
        )
        const by = {
          last: (a: BlobRecord, b: BlobRecord) => b.lastAccess - a.lastAccess,
          size: (a: BlobRecord, b: BlobRecord) => b.size - a.size,
          first: (a: BlobRecord, b: BlobRecord) => b.createdAt - a.createdAt,
        }[query.sort]
        const items = blobs.sort((a, b) => by(a, b) || a.digest.localeCompare(b.digest))
        return paged(await catalogRows(deps, slice(items, query)), items.length, query)
      })

      api.get('/unused', route, async (request) => {
        const query = parse(
          z.strictObject({ days: z.coerce.number().int().min(1).max(3650).default(30), ...page }),
          request.query,
        )
        const cutoff = deps.now() - query.days * DAY_MS
        const [blobs, disk] = await Promise.all([
          deps.metadata.leastRecentlyUsed(MAX_BLOBS_SCANNED),
          deps.metadata.blobTotals(),
        ])
        const unused = blobs.filter((b) => b.lastAccess < cutoff)
        const bytes = unused.reduce((sum, b) => sum + b.size, 0)
        return {
          ...paged(await catalogRows(deps, slice(unused, query)), unused.length, query),
          days: query.days,
          bytes,
          shareOfDisk: disk.bytes === 0 ? 0 : bytes / disk.bytes,
        }
      })
      done()
    },
    { prefix: API_PREFIX },
  )
}

/** Every mirror of every pool, labelled with its protocol and kind. */
export function upstreamHealth(pools: {
  readonly registries: readonly Snapshots[]
  readonly indexes: readonly Snapshots[]
  readonly fileHosts: readonly Snapshots[]
}): (MirrorSnapshot & { protocol: 'docker' | 'pypi'; kind: 'registry' | 'index' | 'files' })[] {
  const health = (
    list: readonly Snapshots[],
    protocol: 'docker' | 'pypi',
    kind: 'registry' | 'index' | 'files',
  ) => list.flatMap((pool) => pool.snapshot().map((m) => ({ protocol, kind, ...m })))
  return [
    ...health(pools.registries, 'docker', 'registry'),
    ...health(pools.indexes, 'pypi', 'index'),
    ...health(pools.fileHosts, 'pypi', 'files'),
  ]
}

/** The `rate` of a scrub request body (`"100MB"`, `"1GiB/s"` or bytes per second); undefined: the configured one. */
function scrubRate(body: unknown): number | undefined {
  const parsed = z
    .strictObject({ rate: z.union([z.string(), z.number()]).optional() })
    .optional()
    .safeParse(body ?? undefined)
  if (!parsed.success)
    throw new ApiBadQueryError('the body must be empty or JSON: {"rate": "100MB/s"}')
  const given = parsed.data?.rate
  if (given === undefined) return undefined
  const rate = parseSize(typeof given === 'string' ? given.replace(/\/s$/i, '') : given)
  if (rate === undefined || rate < MIN_SCRUB_RATE)
    throw new ApiBadQueryError('rate: must be a rate like 100MB/s, at least 1MiB/s')
  return rate
}

/** One page of a list: `items` is the page itself, `total` the whole list's length. */
function paged<T>(items: readonly T[], total: number, query: { offset: number }) {
  const end = query.offset + items.length
  return { items, total, offset: query.offset, next: end < total ? end : null }
}

function slice<T>(all: readonly T[], query: { limit: number; offset: number }): T[] {
  return all.slice(query.offset, query.offset + query.limit)
}

function parse<T extends z.ZodType>(schema: T, query: unknown): z.output<T> {
  const parsed = schema.safeParse(query ?? {})
  if (parsed.success) return parsed.data
  const issue = parsed.error.issues[0]
  const where = issue?.path.join('.') ?? ''
  const unknown = issue?.code === 'unrecognized_keys' ? issue.keys.join(', ') : undefined
  throw new ApiBadQueryError(
    unknown !== undefined
      ? `unknown query parameter: ${unknown}`
      : `${where || 'query'}: ${issue?.message ?? 'invalid'}`,
  )
}

/** A sync call, its errors as API answers: 400 for an unknown list, 409 for one running. */
async function syncCall<T>(call: () => Promise<T>): Promise<T> {
  try {
    return await call()
  } catch (error) {
    if (error instanceof SyncUnknownListError) throw new ApiBadQueryError(`lists: ${error.message}`)
    if (error instanceof SyncBusyError) throw new ApiConflictError(error.message)
    throw error
  }
}
