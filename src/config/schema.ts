/**
 * The configuration schema: the single source of truth for every key, its
 * default and its type. `config.example.yaml` documents the same keys and a test
 * loads it, so the two cannot drift. Durations parse to milliseconds and sizes to
 * bytes here, once; the rest of the code only sees numbers.
 */
import { validRange as validPep440Range } from '@renovatebot/pep440'
import { Cron } from 'croner'
import { validRange as validSemverRange } from 'semver'
import { z } from 'zod'
import {
  accessSchema,
  anonymousAccess,
  authSchema,
  limitsSchema,
  proxySchema,
} from './auth-schema.ts'
import { clusterSchema } from './cluster-schema.ts'
import { duration, envName, oneSecretSource, size } from './fields.ts'
import { parseDuration } from './units.ts'

import type { Millis } from './fields.ts'
export type { Millis }

/** The slowest scrub rate accepted (bytes per second): slower would take months on a full disk. */
export const MIN_SCRUB_RATE = 1024 * 1024

function parsedUrl(value: string): URL | undefined {
  try {
    return new URL(value)
  } catch {
    return undefined
  }
}

const httpUrl = z.string().superRefine((value, ctx) => {
  const url = parsedUrl(value)
  if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
    ctx.addIssue({ code: 'custom', message: 'must be an http(s) URL' })
  } else if (url.username || url.password) {
    // Credentials in URLs end up in logs and error messages; they have their own keys.
    ctx.addIssue({ code: 'custom', message: 'must not contain credentials; use username/password' })
  }
})

/** An origin (scheme, host, optional port) such as https://files.pythonhosted.org. */
const origin = z.string().superRefine((value, ctx) => {
  const url = parsedUrl(value)
  const isOrigin =
    url !== undefined &&
    (url.protocol === 'http:' || url.protocol === 'https:') &&
    !url.username &&
    !url.password &&
    url.search === '' &&
    url.hash === '' &&
    (url.pathname === '/' || url.pathname === '') &&
    !value.endsWith('/.')
  if (!isOrigin) {
    ctx.addIssue({
      code: 'custom',
      message:
        'must be an origin like https://files.pythonhosted.org (scheme, host, optional port; no path)',
    })
  }
})

const positiveInt = (fallback: number) => z.number().int().min(1).default(fallback)

/** S3's bounds on the parts of a multipart upload. */
const MIN_S3_PART_BYTES = 5 * 1024 * 1024
const MAX_S3_PART_BYTES = 5 * 1024 * 1024 * 1024
/** S3 presigned URLs live at most 7 days (SigV4). */
const MAX_PRESIGN_MS = 7 * 24 * 3_600_000

/** storage.s3: the bucket blobs live in (AWS S3, MinIO, Ceph RGW, Cloudflare R2, ...). */
const s3Storage = z.strictObject({
  bucket: z.string().min(1),
  /** The service's URL; omit for AWS S3 (the region then decides it). */
  endpoint: httpUrl.optional(),
  region: z.string().min(1).default('us-east-1'),
  /** Prepended to every key, so one bucket can hold other data too: `cache/` -> cache/blobs/sha256/... */
  prefix: z
    .string()
    .default('')
    .refine((value) => !value.startsWith('/') && !value.includes('//'), {
      message: 'must not start with / or contain //',
    })
    .transform((value) => (value === '' || value.endsWith('/') ? value : `${value}/`)),
  /** Path-style URLs (endpoint/bucket/key), which MinIO and Ceph usually need; else virtual-hosted. */
  pathStyle: z.boolean().default(false),
  /** Omit to use the standard AWS chain (AWS_* environment, shared files, web identity, instance role). */
  credentials: z
    .strictObject({
      accessKeyId: z.string().min(1),
      secretAccessKey: z.string().min(1),
      sessionToken: z.string().min(1).optional(),
    })
    .optional(),
  /** Part size of multipart uploads; blobs up to it are uploaded in one request. */
  partSize: size('16MiB').refine(
    (bytes) => bytes >= MIN_S3_PART_BYTES && bytes <= MAX_S3_PART_BYTES,
    'must be between 5MiB and 5GiB',
  ),
  /** Answer warm blob GETs with a redirect to a presigned URL valid this long; false: serve the bytes. */
  redirect: z
    .union([
      z.literal(false),
      z.strictObject({
        expires: duration('5m').refine(
          (ms) => ms >= 1000 && ms <= MAX_PRESIGN_MS,
          'must be between 1s and 7d',
        ),
      }),
    ])
    .default(false),
})

/**
 * A host a cross-origin redirect may go to: `cdn.example.com`, or
 * `*.example.com` for any host under example.com (not example.com itself).
 */
const hostPattern = z
  .string()
  .regex(
    /^(?:\*\.)?[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/,
    'must be a lowercase host name like cdn.example.com or *.example.com',
  )

/** The URL clients reach pullthrough at (behind a proxy or ingress): absolute, no query. */
const publicUrl = httpUrl.superRefine((value, ctx) => {
  const url = parsedUrl(value)
  if (url && (url.search !== '' || url.hash !== '')) {
    ctx.addIssue({ code: 'custom', message: 'must not have a query or fragment' })
  }
})

const upstreamSchema = z
  .strictObject({
    url: httpUrl,
    username: z.string().min(1).optional(),
    password: z.string().min(1).optional(),
    passwordFile: z.string().min(1).optional(),
    passwordEnv: z
      .string()
      .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be an environment variable name')
      .optional(),
    /**
     * When set, cross-origin redirects are followed only to these hosts (blob
     * CDNs, file hosts); when absent, to any https host that passes the
     * address checks.
     */
    redirectHosts: z.array(hostPattern).optional(),
  })
  .superRefine((upstream, ctx) => {
    const sources = (['password', 'passwordFile', 'passwordEnv'] as const).filter(
      (key) => upstream[key] !== undefined,
    )
    if (sources.length > 1) {
      ctx.addIssue({
        code: 'custom',
        path: [sources[1] ?? 'password'],
        message: `set only one of password, passwordFile, passwordEnv (also set: ${sources[0] ?? ''})`,
      })
    }
    if (sources.length > 0 && upstream.username === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['username'],
        message: `is required with ${sources[0] ?? 'password'}`,
      })
    }
  })

/** Settings shared by every upstream pool (a Docker registry or a PyPI index). */
const poolFields = {
  /** `ordered`: first healthy mirror wins. `fastest`: best recent latency/throughput, with some exploration. */
  selection: z.enum(['ordered', 'fastest']).default('ordered'),
  timeouts: z
    .strictObject({
      connect: duration('10s'),
      headers: duration('30s'),
      bodyIdle: duration('30s'),
      document: duration('60s'),
    })
    .prefault({}),
  retry: z
    .strictObject({
      attempts: positiveInt(3),
      backoffBase: duration('200ms'),
      backoffMax: duration('5s'),
      budget: duration('30s'),
    })
    .prefault({}),
  breaker: z
    .strictObject({
      failures: positiveInt(5),
      cooldown: duration('30s'),
    })
    .prefault({}),
}

const REGISTRY_NAME_RE = /^[a-z0-9]+(?:[.-][a-z0-9]+)*(?::[0-9]{1,5})?$/
const INDEX_NAME_RE = /^[a-z0-9]+(?:[._-][a-z0-9]+)*$/

/**
 * A tag or project page the upstreams answer 404 for, after the cache held it:
 * keep serving what is cached (upstream deletions do not delete the cache) or
 * drop it and answer 404 too.
 */
const onUpstreamNotFound = z.enum(['keep', 'drop']).default('keep')

const registrySchema = z.strictObject({
  name: z
    .string()
    .regex(REGISTRY_NAME_RE, 'must be a registry host name like docker.io or ghcr.io'),
  default: z.boolean().default(false),
  upstreams: z.array(upstreamSchema).min(1, 'needs at least one upstream'),
  tagTTL: duration('5m'),
  onUpstreamNotFound,
  /** What clients without credentials may do here when auth is on (default: auth.anonymous). */
  anonymous: anonymousAccess.optional(),
  ...poolFields,
})

const indexSchema = z.strictObject({
  name: z.string().regex(INDEX_NAME_RE, 'must be lowercase letters, digits, ".", "_" or "-"'),
  default: z.boolean().default(false),
  upstreams: z.array(upstreamSchema).min(1, 'needs at least one upstream'),
  fileHosts: z.array(origin).default([]),
  indexTTL: duration('10m'),
  onUpstreamNotFound,
  /** What clients without credentials may do here when auth is on (default: auth.anonymous). */
  anonymous: anonymousAccess.optional(),
  ...poolFields,
})

/** When a sync list runs by itself: every so often, or at the times a cron expression names. */
export type SyncSchedule =
  | { readonly kind: 'interval'; readonly ms: Millis }
  | { readonly kind: 'cron'; readonly expression: string }

/** The shortest interval between two scheduled runs of a list. */
export const MIN_SYNC_INTERVAL_MS = 60_000

const syncSchedule = z.string().transform((value, ctx): SyncSchedule => {
  const ms = parseDuration(value)
  if (ms !== undefined) {
    if (ms < MIN_SYNC_INTERVAL_MS)
      ctx.issues.push({ code: 'custom', input: value, message: 'must be at least 1m' })
    return { kind: 'interval', ms }
  }
  try {
    new Cron(value, { paused: true })
  } catch (error) {
    ctx.issues.push({
      code: 'custom',
      input: value,
      message: `must be an interval like 6h or a cron expression like "0 3 * * *" (${(error as Error).message})`,
    })
    return z.NEVER
  }
  return { kind: 'cron', expression: value }
})

/** How many of the newest matching tags or versions to keep warm. */
const latest = z.number().int().min(1).max(1000).optional()

const syncImageSchema = z.strictObject({
  /** The configured registry; the default one when omitted. */
  registry: z.string().optional(),
  repository: z.string().min(1),
  /** Tag names or glob patterns (`3.*`, `*-alpine`); default `latest`. */
  tags: z.array(z.string().min(1)).min(1).optional(),
  /** A semver range the tags must satisfy (`>=3.19 <4`); `v1.2` and `1.2` count as `1.2.0`. */
  semver: z
    .string()
    .refine((range) => validSemverRange(range) !== null, 'must be a semver range like ">=3.19 <4"')
    .optional(),
  latest,
  /** `os/arch[/variant]` of a multi-arch index to fetch; default all. */
  platforms: z
    .array(
      z
        .string()
        .regex(
          /^[a-z0-9]+\/[a-z0-9_]+(?:\/[a-z0-9]+)?$/,
          'must be like linux/amd64 or linux/arm64/v8',
        ),
    )
    .min(1)
    .optional(),
})

const syncPackageSchema = z.strictObject({
  /** The configured index; the default one when omitted. */
  index: z.string().optional(),
  project: z.string().min(1),
  /** A PEP 440 specifier (`>=2.31,<3`); default: every version (see latest). */
  versions: z
    .string()
    .refine((spec) => validPep440Range(spec), 'must be a PEP 440 specifier like ">=2.31,<3"')
    .optional(),
  /** The newest N matching versions; the newest one when neither versions nor latest is set. */
  latest,
  /** Filename globs of the files wanted (`*manylinux*x86_64.whl`, `*.tar.gz`); default all. */
  files: z.array(z.string().min(1)).min(1).optional(),
})

/** What a sync list's name may be: it is a CLI argument, a metric label and part of a key. */
export const SYNC_LIST_NAME = /^[a-z0-9][a-z0-9._-]{0,62}$/

const syncListSchema = z.strictObject({
  name: z.string().regex(SYNC_LIST_NAME, 'must be lowercase letters, digits, ".", "_" or "-"'),
  /** An interval (`6h`) or a cron expression; without one the list runs only when asked. */
  schedule: syncSchedule.optional(),
  /** Average download rate of a run, bytes per second; 0: unlimited. */
  rate: size('0'),
  /** Pin what the list fetches: eviction and retention never delete it. */
  pin: z.boolean().default(false),
  images: z.array(syncImageSchema).default([]),
  packages: z.array(syncPackageSchema).default([]),
  /** pip requirements files (`name==1.2`, `name>=1`): the newest version each line allows. */
  requirements: z.array(z.string().min(1)).default([]),
})

/** Built-in upstreams: what `pullthrough serve` uses with no config file. */
export const DEFAULT_REGISTRIES = [
  {
    name: 'docker.io',
    default: true,
    upstreams: [{ url: 'https://registry-1.docker.io' }, { url: 'https://mirror.gcr.io' }],
  },
]

export const DEFAULT_INDEXES = [
  {
    name: 'pypi',
    default: true,
    upstreams: [
      { url: 'https://pypi.org/simple/' },
      { url: 'https://pypi.tuna.tsinghua.edu.cn/simple/' },
      { url: 'https://mirrors.aliyun.com/pypi/simple/' },
      { url: 'https://mirrors.ustc.edu.cn/pypi/simple/' },
    ],
    fileHosts: ['https://files.pythonhosted.org'],
  },
]

function uniqueNamesAndOneDefault(
  list: readonly { name: string; default: boolean }[],
  ctx: z.RefinementCtx,
) {
  const seen = new Set<string>()
  let defaults = 0
  list.forEach((entry, i) => {
    if (seen.has(entry.name)) {
      ctx.addIssue({ code: 'custom', path: [i, 'name'], message: `duplicate name "${entry.name}"` })
    }
    seen.add(entry.name)
    if (entry.default && ++defaults > 1) {
      ctx.addIssue({
        code: 'custom',
        path: [i, 'default'],
        message: 'only one entry can be the default',
      })
    }
  })
}

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const

export const configSchema = z
  .strictObject({
    server: z
      .strictObject({
        host: z.string().min(1).default('0.0.0.0'),
        port: z.number().int().min(0).max(65535).default(5000),
        /** How long in-flight responses may take to finish after SIGTERM/SIGINT. */
        shutdownTimeout: duration('30s'),
        /** Trust X-Forwarded-For (behind an ingress or load balancer) for client IPs. */
        trustProxy: z.boolean().default(false),
        tls: z.strictObject({ cert: z.string().min(1), key: z.string().min(1) }).optional(),
        /** Where clients reach pullthrough; absolute URLs in responses use it (else they are relative). */
        publicUrl: publicUrl.optional(),
        /** Open client connections at most; beyond it new connections get a quick 503. */
        maxConnections: positiveInt(4096),
        /** A connection that moves no byte either way for this long is closed. */
        idleTimeout: duration('2m'),
      })
      .prefault({}),
    storage: z
      .strictObject({
        path: z.string().min(1).default('./data'),
        maxSize: size('50GiB'),
        /** Eviction stops once the cache is at or below maxSize * lowWatermark. */
        lowWatermark: z.number().gt(0).max(1).default(0.9),
        /**
         * true: hash every byte of every whole-blob read; changed: hash a file only
         * when it changed since it was last verified (the scrub covers the rest);
         * false: never.
         */
        verifyOnRead: z
          .union([z.boolean(), z.literal('changed')], { error: 'must be true, false or "changed"' })
          .default(true),
        /** Largest blob accepted from an upstream; larger ones are refused or cut. */
        maxBlobSize: size('32GiB'),
        /** Keep blobs in an S3-compatible bucket instead of under `path` (which then holds tmp/ and meta/). */
        s3: s3Storage.optional(),
      })
      .prefault({}),
    metadata: z
      .strictObject({
        redis: z
          .strictObject({
            url: z
              .string()
              .refine(
                (value) => /^rediss?:$/.test(parsedUrl(value)?.protocol ?? ''),
                'must be a redis:// or rediss:// URL',
              ),
            keyPrefix: z.string().default('pullthrough:'),
            connectTimeout: duration('5s'),
            commandTimeout: duration('2s'),
            /**
             * Reach the primary through Redis Sentinel: these sentinels (host:port)
             * name it, and after a failover the new one. The URL then gives only the
             * password and database.
             */
            sentinels: z
              .strictObject({
                masterName: z.string().min(1).default('mymaster'),
                addresses: z
                  .array(
                    z
                      .string()
                      .regex(
                        /^[A-Za-z0-9.-]+:\d{1,5}$|^\[[0-9a-fA-F:]+\]:\d{1,5}$/,
                        'must be host:port',
                      ),
                  )
                  .min(1, 'needs at least one sentinel'),
              })
              .optional(),
          })
          .optional(),
      })
      .prefault({}),
    log: z
      .strictObject({
        level: z.enum(LOG_LEVELS).default('info'),
        /** json: one JSON object per line; pretty: for a person; auto: pretty when stdout is a terminal. */
        format: z.enum(['auto', 'json', 'pretty']).default('auto'),
      })
      .prefault({}),
    scrub: z
      .strictObject({
        /** How often every stored blob is re-hashed against its digest; 0 turns the schedule off. */
        interval: duration('7d'),
        /** How fast a scrub reads, bytes per second. */
        rate: size('50MiB').refine((bytes) => bytes >= MIN_SCRUB_RATE, 'must be at least 1MiB'),
      })
      .prefault({}),
    retention: z
      .strictObject({
        /** Blobs nobody pulled for this long are deleted by gc; 0: no such rule (the size cap still applies). */
        unusedFor: duration('0'),
        /** Tags kept per repository, newest first (pinned ones besides); 0: all. */
        keepTags: z.number().int().min(0).default(0),
        /** How often gc runs while a rule is set. */
        interval: duration('1h'),
      })
      .prefault({}),
    /** What to keep warm: lists of images and projects fetched ahead of the clients. */
    sync: z
      .array(syncListSchema)
      .default([])
      .superRefine((lists, ctx) => {
        const seen = new Set<string>()
        lists.forEach((list, i) => {
          if (seen.has(list.name))
            ctx.addIssue({
              code: 'custom',
              path: [i, 'name'],
              message: `duplicate name "${list.name}"`,
            })
          seen.add(list.name)
        })
      }),
    /** Contact no upstream: serve what is cached, answer 503 for the rest. Switchable at runtime. */
    offline: z.boolean().default(false),
    statistics: z
      .strictObject({
        /** Aggregate pull events into the statistics behind /-/api/v1 and the status page. */
        enabled: z.boolean().default(true),
        /** How often aggregated pulls are written to the metadata store. */
        flushInterval: duration('5s'),
      })
      .prefault({}),
    admin: z
      .strictObject({
        /** Bearer token the /-/api/ endpoints require; unset, they are open to every client. */
        token: z.string().min(16).optional(),
        tokenFile: z.string().min(1).optional(),
        tokenEnv: envName.optional(),
      })
      .superRefine(oneSecretSource(['token', 'tokenFile', 'tokenEnv'], false))
      .prefault({}),
    /** Replicas sharing Redis fetch each cold blob once (needs metadata.redis). */
    cluster: clusterSchema.optional(),
    /** Client authentication; unset, anyone who reaches the port may pull. */
    auth: authSchema.optional(),
    access: accessSchema,
    proxy: proxySchema,
    limits: limitsSchema,
    docker: z
      .strictObject({
        registries: z
          .array(registrySchema)
          .prefault(DEFAULT_REGISTRIES)
          .superRefine(uniqueNamesAndOneDefault),
      })
      .prefault({}),
    pypi: z
      .strictObject({
        indexes: z
          .array(indexSchema)
          .prefault(DEFAULT_INDEXES)
          .superRefine(uniqueNamesAndOneDefault),
      })
      .prefault({}),
  })
  .superRefine(syncNamesConfigured)
  .superRefine(accessNeedsAuth)
  .superRefine(clusterNeedsRedis)

/** The fill leases that make replicas one cache live in Redis. */
function clusterNeedsRedis(
  config: { cluster?: unknown; metadata: { redis?: unknown } },
  ctx: z.RefinementCtx,
): void {
  if (config.cluster !== undefined && config.metadata.redis === undefined)
    ctx.addIssue({
      code: 'custom',
      path: ['cluster'],
      message: 'needs metadata.redis: the replicas find each other through it',
    })
}

/** Access rules decide between signed-in users: without auth there are none. */
function accessNeedsAuth(
  config: { readonly auth?: unknown; readonly access: readonly unknown[] },
  ctx: z.RefinementCtx,
): void {
  if (config.access.length > 0 && config.auth === undefined)
    ctx.addIssue({
      code: 'custom',
      path: ['access'],
      message: 'access rules need auth (an htpasswd file or API tokens) to be configured',
    })
}

/** A sync list may name only configured registries and indexes. */
function syncNamesConfigured(
  config: {
    readonly sync: readonly {
      readonly images: readonly { readonly registry?: string | undefined }[]
      readonly packages: readonly { readonly index?: string | undefined }[]
    }[]
    readonly docker: { readonly registries: readonly { readonly name: string }[] }
    readonly pypi: { readonly indexes: readonly { readonly name: string }[] }
  },
  ctx: z.RefinementCtx,
): void {
  const registries = config.docker.registries.map((r) => r.name)
  const indexes = config.pypi.indexes.map((i) => i.name)
  config.sync.forEach((list, i) => {
    list.images.forEach((image, j) => {
      if (image.registry !== undefined && !registries.includes(image.registry))
        ctx.addIssue({
          code: 'custom',
          path: ['sync', i, 'images', j, 'registry'],
          message: `no registry is named "${image.registry}" (configured: ${registries.join(', ')})`,
        })
    })
    list.packages.forEach((pkg, j) => {
      if (pkg.index !== undefined && !indexes.includes(pkg.index))
        ctx.addIssue({
          code: 'custom',
          path: ['sync', i, 'packages', j, 'index'],
          message: `no index is named "${pkg.index}" (configured: ${indexes.join(', ')})`,
        })
    })
  })
}

type DeepReadonly<T> = T extends (infer U)[]
  ? readonly DeepReadonly<U>[]
  : T extends object
    ? { readonly [K in keyof T]: DeepReadonly<T[K]> }
    : T

/** The validated configuration, frozen. */
export type Config = DeepReadonly<z.output<typeof configSchema>>
export type RegistryConfig = Config['docker']['registries'][number]
export type IndexConfig = Config['pypi']['indexes'][number]
export type UpstreamConfig = RegistryConfig['upstreams'][number]
export type PoolConfig = Pick<
  RegistryConfig,
  'name' | 'upstreams' | 'selection' | 'timeouts' | 'retry' | 'breaker'
>
export type SyncListConfig = Config['sync'][number]
export type SyncImageConfig = SyncListConfig['images'][number]
export type SyncPackageConfig = SyncListConfig['packages'][number]
export type AuthConfig = NonNullable<Config['auth']>
export type AccessRuleConfig = Config['access'][number]
export type ProxyRuleConfig = Config['proxy'][number]
export type AnonymousAccess = NonNullable<RegistryConfig['anonymous']>
