/**
 * buildApp(config, deps) -> Fastify instance. Everything is wired here and passed
 * down; tests build the app in-process and replace a part by passing another.
 * Parts the caller did not pass are created from the config and closed with the app.
 */
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { hostname } from 'node:os'
import { readFile } from 'node:fs/promises'
import { LogController, fastify, type FastifyBaseLogger, type FastifyInstance } from 'fastify'
import { Registry } from 'prom-client'
import { AccessLog } from './cache/access-log.ts'
import { CachedDocuments } from './cache/cached-documents.ts'
import { Evictor } from './cache/eviction.ts'
import { IndexPages } from './cache/index-pages.ts'
import { ManifestCache } from './cache/manifests.ts'
import { StreamedDocuments } from './cache/streamed-documents.ts'
import { ReadThrough } from './cache/read-through.ts'
import { reconcileBlobs } from './cache/reconcile.ts'
import { ConfigError } from './config/errors.ts'
import { manifestMediaType } from './docker/media-types.ts'
import { registerDockerRoutes, renderDockerError } from './docker/routes.ts'
import type { Config } from './config/schema.ts'
import { limitConnections } from './http/connection-limit.ts'
import { answerFrameworkError, installErrorHandling } from './http/errors.ts'
import { registerHealthRoutes } from './http/health.ts'
import { registerMetrics } from './http/metrics.ts'
import { addSecurityHeaders, answerClientError } from './http/security-headers.ts'
import { requestLogger } from './http/request-logger.ts'
import { renderPypiError } from './pypi/http-errors.ts'
import { registerPypiRoutes } from './pypi/routes.ts'
import { openMetadataStore } from './metadata/open.ts'
import { recordRetentionMs } from './metadata/retention.ts'
import type { MetadataStore } from './metadata/store.ts'
import { createLogger, type Logger } from './observability/logger.ts'
import { createMetrics, type Metrics } from './observability/metrics.ts'
import { BlobStore } from './storage/blob-store.ts'
import type { BlobStorage } from './storage/blob-storage.ts'
import type { S3BlobStore } from './storage/s3-store.ts'
import { FileHasher } from './storage/file-hasher.ts'
import { sweepStaleTemps } from './storage/temp-sweeper.ts'
import { FileHosts } from './upstream/file-hosts.ts'
import { PullStatistics } from './insight/pull-statistics.ts'
import { Statistics } from './insight/statistics.ts'
import { registerApi } from './http/api/routes.ts'
import { registerStatusPage } from './http/page/routes.ts'
import { EventRing } from './observability/event-ring.ts'
import { GarbageCollector } from './cache/gc.ts'
import { Scrubber } from './cache/scrub.ts'
import { SyncJobs } from './sync/jobs.ts'
import { SYNC_ATTEMPTS, SYNC_BACKOFF_BASE_MS, SYNC_BACKOFF_CAP_MS } from './sync/backoff.ts'
import { dockerSyncImages } from './docker/sync-images.ts'
import { pypiSyncProjects } from './pypi/sync-projects.ts'
import { dockerBundleImages } from './docker/bundle-images.ts'
import { pypiBundleProjects } from './pypi/bundle-projects.ts'
import type { BundleImages, BundleProjects } from './bundle/ports.ts'
import { registerBundleApi } from './http/api/bundle-routes.ts'
import { registerTokenApi } from './http/api/token-routes.ts'
import { registerDockerWebhook } from './docker/webhook.ts'
import type { Credentials } from './auth/identity.ts'
import { buildClientAuth, loadAuthFiles } from './auth/open.ts'
import { installClientAuth } from './http/client-auth.ts'
import { installRateLimits } from './http/rate-limits.ts'
import { Leadership } from './metadata/leadership.ts'
import { FillLeases } from './cluster/fill-leases.ts'
import { clusterFillRouter } from './cluster/fill-router.ts'
import { startInternalServer } from './cluster/internal-server.ts'
import { PeerSources } from './cluster/peer-sources.ts'
import { OfflineSwitch } from './upstream/offline-switch.ts'
import { UpstreamPool } from './upstream/pool.ts'

/**
 * How long an idle keep-alive connection is kept between requests (capped by
 * server.idleTimeout). Longer than the 60 s idle timeout of common load
 * balancers, so they never send a request on a connection pullthrough is closing.
 */
const KEEP_ALIVE_TIMEOUT_MS = 72_000

export interface AppDeps {
  readonly logger: Logger
  readonly metrics: Metrics
  readonly blobs: BlobStorage
  readonly metadata: MetadataStore
  /** Milliseconds since the epoch; tests pass a controllable clock. */
  readonly now: () => number
  /** Waits between retries of background work (sync lists); tests record the waits instead. */
  readonly pause: (ms: number) => Promise<void>
  /** In [0, 1): the jitter of those waits. */
  readonly random: () => number
}

/** The services the protocol routes use: upstream pools per registry and index, the read-through cache and the caches of documents. */
export interface Services {
  /** Which replica runs scheduled work. */
  readonly leadership: Leadership
  readonly cache: ReadThrough
  /** The other replicas' running fills (cluster), asked like mirrors. */
  readonly peers: PeerSources | undefined
  readonly manifests: ManifestCache
  /** Blob hits waiting to be written to the metadata store. */
  readonly accesses: AccessLog
  /** Small upstream documents kept for a TTL (tag lists). */
  readonly documents: CachedDocuments
  readonly evictor: Evictor
  readonly registries: ReadonlyMap<string, UpstreamPool>
  readonly indexes: ReadonlyMap<string, UpstreamPool>
  /** Per index: the origins its files may be fetched from. */
  readonly fileHosts: ReadonlyMap<string, FileHosts>
  readonly pages: IndexPages
  /** Large documents streamed and cached whole (project lists, files without a hash). */
  readonly streamed: StreamedDocuments
  /** Pull events counted in memory and flushed to the metadata store; undefined when statistics are off. */
  readonly pulls: PullStatistics | undefined
  /** Questions asked of the flushed statistics. */
  readonly statistics: Statistics
  /** The most recent pull events of this replica. */
  readonly events: EventRing
  /** Offline mode: while on, no upstream is contacted. */
  readonly offline: OfflineSwitch
  /** Re-hashes the stored blobs on a schedule and when asked. */
  readonly scrubber: Scrubber
  /** Reconciles records with the disk and applies `retention`. */
  readonly gc: GarbageCollector
  /** Runs the sync lists on their schedules and when asked. */
  readonly sync: SyncJobs
  /** What bundles export and import, per protocol. */
  readonly bundleImages: BundleImages
  readonly bundleProjects: BundleProjects
}

/** Builds the app; call `listen` on the result, and `close` to release everything it created. */
export async function buildApp(
  config: Config,
  given: Partial<AppDeps> = {},
): Promise<FastifyInstance> {
  // TLS files first: a bad path must fail before anything is opened.
  const tls = config.server.tls ? await readTls(config.server.tls) : undefined
  const owned: { close: () => Promise<void> }[] = []
  const logger = given.logger ?? createLogger({ level: config.log.level })
  const metrics = given.metrics ?? createMetrics(new Registry())
  // Auth files too: a bad htpasswd or signing key fails the start before anything is opened.
  const authFiles = await loadAuthFiles(config, logger, given.now ?? Date.now)
  // Metadata first: the embedded store's lock must be held before tmp/ is cleaned.
  const metadata = given.metadata ?? (await openOwnedMetadata(config, logger, metrics, owned))
  const blobs =
    given.blobs ??
    (await openOwnedBlobStore(config, logger, owned).catch(async (error: unknown) => {
      // A bucket that does not answer must not leave the metadata store (and its lock) open.
      for (const part of owned.reverse()) await part.close().catch(() => undefined)
      throw error
    }))
  const deps: AppDeps = {
    logger,
    metrics,
    blobs,
    metadata,
    now: given.now ?? Date.now,
    pause: given.pause ?? ((ms) => sleep(ms)),
    random: given.random ?? Math.random,
  }

  const options = {
    loggerInstance: logger as FastifyBaseLogger,
    // One line per request is logged by the metrics hook; fastify's two are noise.
    logController: new LogController({ disableRequestLogging: true }),
    childLoggerFactory: requestLogger,
    // Repository names with many path segments are long; the distribution spec bounds them.
    routerOptions: { maxParamLength: 1024 },
    trustProxy: config.server.trustProxy,
    return503OnClosing: true,
    // A connection that moves no byte either way for this long is closed (socket
    // inactivity, so a long transfer that keeps moving is not cut): a client that
    // stopped reading cannot hold a response, its file and its fill forever.
    connectionTimeout: config.server.idleTimeout,
    keepAliveTimeout: Math.min(KEEP_ALIVE_TIMEOUT_MS, config.server.idleTimeout),
    clientErrorHandler: answerClientError,
    frameworkErrors: answerFrameworkError,
  }
  // The HTTPS instance differs from the plain one only in its server type; every
  // route and hook here works on both, so both are handled as the default type.
  const app = tls
    ? (fastify({ ...options, https: tls }) as unknown as FastifyInstance)
    : fastify(options)

  addSecurityHeaders(app)
  limitConnections(app, {
    maxConnections: config.server.maxConnections,
    onRefused: () => {
      metrics.httpConnectionsRejected.inc()
    },
  })
  metrics.cacheMaxSizeBytes.set(config.storage.maxSize)
  const services = createServices(config, deps)
  const clientAuth = buildClientAuth(config, authFiles, metadata, deps.now)
  installErrorHandling(
    app,
    new Map([
      ['docker', renderDockerError],
      ['pypi', renderPypiError],
    ]),
  )
  registerMetrics(
    app,
    metrics,
    logger,
    (event) => {
      services.events.push(event)
      services.pulls?.record(event)
    },
    (chunk) => deps.blobs.readBuffers.give(chunk),
  )
  const { authenticator, policy } = clientAuth
  const admins =
    authenticator &&
    (async (credentials: Credentials) => {
      const principal = await authenticator.authenticate(credentials)
      return principal?.adminToken === true || policy.isAdmin(principal?.identity)
    })
  const apiDeps = {
    token: config.admin.token,
    admins,
    maxSize: config.storage.maxSize,
    statistics: services.statistics,
    events: services.events,
    registries: [...services.registries.values()],
    indexes: [...services.indexes.values()],
    fileHosts: [...services.fileHosts.values()],
    metadata,
    readHead: (digest: string, bytes: number) => deps.blobs.readHead(digest, bytes),
    ttl: freshFor(config),
    offline: services.offline,
    scrubber: services.scrubber,
    gc: services.gc,
    sync: services.sync,
    now: deps.now,
  }
  registerApi(app, apiDeps)
  registerBundleApi(app, {
    token: config.admin.token,
    admins,
    plan: {
      images: services.bundleImages,
      projects: services.bundleProjects,
      metadata,
      blobs: deps.blobs,
      registries: config.docker.registries.map((r) => r.name),
      now: deps.now,
    },
    import: {
      blobs: deps.blobs,
      metadata,
      now: deps.now,
      maxBlobBytes: config.storage.maxBlobSize,
    },
    lists: config.sync,
    logger,
    now: deps.now,
  })
  registerTokenApi(app, { token: config.admin.token, admins, apiTokens: clientAuth.apiTokens })
  registerStatusPage(app, {
    ...apiDeps,
    publicUrl: config.server.publicUrl,
    registryNames: config.docker.registries.map((r) => r.name),
    indexNames: config.pypi.indexes.map((i) => ({ name: i.name, isDefault: i.default })),
  })
  registerHealthRoutes(app, {
    storage: () => deps.blobs.checkWritable(),
    metadata: () => deps.metadata.ping(),
  })
  registerDockerWebhook(app, {
    token: config.admin.token,
    admins,
    registries: config.docker.registries,
    pools: services.registries,
    manifests: services.manifests,
  })
  await installRateLimits(app, config, metrics)
  const guard = installClientAuth(app, {
    ...clientAuth,
    registries: config.docker.registries,
    publicUrl: config.server.publicUrl,
    logger,
    metrics,
  })
  registerDockerRoutes(app, {
    guard,
    registries: config.docker.registries,
    pools: services.registries,
    cache: services.cache,
    manifests: services.manifests,
    documents: services.documents,
  })
  registerPypiRoutes(app, {
    guard,
    indexes: config.pypi.indexes,
    pools: services.indexes,
    fileHosts: services.fileHosts,
    pages: services.pages,
    streamed: services.streamed,
    cache: services.cache,
    logger,
    metrics,
    publicUrl: config.server.publicUrl,
  })
  app.decorate('deps', deps)
  app.decorate('services', services)
  app.addHook('onClose', async () => {
    // Stop transfers, but let verified fills finish storing before the metadata store closes.
    services.cache.abortFills()
    await services.scrubber.close()
    await services.sync.close()
    await services.gc.close()
    // Another replica may take the scheduled work over at once.
    await services.leadership.stop()
    await services.cache.settled()
    await services.accesses.flush()
    await services.pulls?.close()
    await services.peers?.close()
    await Promise.all(
      [
        ...services.registries.values(),
        ...services.indexes.values(),
        ...services.fileHosts.values(),
      ].map((p) => p.close()),
    )
    for (const part of owned.reverse()) await part.close()
  })
  if (config.cluster) {
    const { cluster } = config
    owned.push(
      await startInternalServer({
        host: cluster.host ?? config.server.host,
        port: cluster.port,
        secret: cluster.secret ?? '',
        cache: services.cache,
        logger,
      }),
    )
  }
  await services.leadership.start()
  services.scrubber.startSchedule()
  services.sync.startSchedule()
  services.gc.startSchedule(config.retention.interval)
  // Account for blobs the metadata store does not know, then enforce the cap; in the background.
  reconcileBlobs(blobs, metadata, logger)
    .then(() => services.evictor.run())
    .catch((error: unknown) => {
      logger.warn({ err: error }, 'start-up reconciliation of the blob store failed')
    })
  return app
}

declare module 'fastify' {
  interface FastifyInstance {
    deps: AppDeps
    services: Services
  }
}

/** How long a registry's tags or an index's pages stay fresh, by pool name (the catalog's staleness). */
function freshFor(config: Config) {
  const tagTTL = new Map(config.docker.registries.map((r) => [r.name, r.tagTTL]))
  const indexTTL = new Map(config.pypi.indexes.map((i) => [i.name, i.indexTTL]))
  return (protocol: 'docker' | 'pypi', pool: string) =>
    (protocol === 'docker' ? tagTTL : indexTTL).get(pool)
}

function createServices(config: Config, deps: AppDeps): Services {
  const { blobs, metadata, metrics, logger, now } = deps
  const offline = new OfflineSwitch(config.offline, { logger, metrics })
  const poolDeps = { logger, metrics, now, offline }
  const registries = new Map(
    config.docker.registries.map((r) => [r.name, new UpstreamPool(r, poolDeps)]),
  )
  const indexes = new Map(config.pypi.indexes.map((i) => [i.name, new UpstreamPool(i, poolDeps)]))
  const onStored = () => {
    evictor.run().catch((error: unknown) => {
      logger.warn({ err: error }, 'eviction failed')
    })
  }
  const accesses = new AccessLog(metadata, logger)
  const { cluster } = config
  // The schema has made sure both the secret and advertise are set when cluster is.
  const peers = cluster
    ? new PeerSources(cluster.secret ?? '', { logger, metrics, now })
    : undefined
  const router =
    cluster && peers
      ? clusterFillRouter(new FillLeases(metadata, cluster.advertise ?? '', logger), peers, metrics)
      : undefined
  const cache: ReadThrough = new ReadThrough({
    accesses,
    blobs,
    metadata,
    metrics,
    logger,
    verifyOnRead: config.storage.verifyOnRead !== false,
    maxBlobBytes: config.storage.maxBlobSize,
    now,
    onStored,
    ...(router ? { router } : {}),
    ...presignIf(config, blobs),
  })
  const manifests = new ManifestCache({
    accesses,
    blobs,
    metadata,
    metrics,
    logger,
    now,
    mediaTypeOf: manifestMediaType,
    onStored,
  })
  const documents = new CachedDocuments({ metadata, logger, now })
  const pages = new IndexPages({ metadata, logger, now })
  const streamed = new StreamedDocuments({
    blobs,
    metadata,
    logger,
    now,
    maxBytes: config.storage.maxBlobSize,
  })
  const fileHosts = new Map(config.pypi.indexes.map((i) => [i.name, new FileHosts(i, poolDeps)]))
  const evictor = new Evictor({
    blobs,
    metadata,
    metrics,
    logger,
    inUse: cache.inUse,
    maxSize: config.storage.maxSize,
    lowWatermark: config.storage.lowWatermark,
    // With Redis, replicas share the volume and read blobs this process cannot see.
    shared: config.metadata.redis !== undefined,
    now,
  })
  const pulls = config.statistics.enabled
    ? new PullStatistics({
        metadata,
        logger,
        metrics,
        now,
        flushIntervalMs: config.statistics.flushInterval,
      })
    : undefined
  pulls?.start()
  // The owner of this app's leases: one per app, so two apps in one process are two replicas.
  const owner = `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`
  const leadership = new Leadership(metadata, {
    owner,
    logger,
    onChange: (leader) => {
      metrics.leader.set(leader ? 1 : 0)
    },
  })
  const isLeader = () => leadership.isLeader()
  const scrubber = new Scrubber({
    blobs,
    metadata,
    metrics,
    logger,
    now,
    intervalMs: config.scrub.interval,
    rate: config.scrub.rate,
    owner,
    isLeader,
  })
  const gc = new GarbageCollector({
    blobs,
    metadata,
    metrics,
    logger,
    inUse: cache.inUse,
    now,
    unusedForMs: config.retention.unusedFor,
    keepTags: config.retention.keepTags,
    registries: config.docker.registries.map((r) => r.name),
    shared: config.metadata.redis !== undefined,
    owner,
    isLeader,
  })
  const dockerDeps = { registries: config.docker.registries, pools: registries, manifests, cache }
  const pypiDeps = {
    indexes: config.pypi.indexes,
    pools: indexes,
    fileHosts,
    pages,
    streamed,
    cache,
    logger,
    metrics,
  }
  const sync = new SyncJobs({
    lists: config.sync,
    images: dockerSyncImages(dockerDeps),
    projects: pypiSyncProjects(pypiDeps),
    metadata,
    metrics,
    logger,
    now,
    backoff: {
      attempts: SYNC_ATTEMPTS,
      baseMs: SYNC_BACKOFF_BASE_MS,
      capMs: SYNC_BACKOFF_CAP_MS,
      sleep: deps.pause,
      random: deps.random,
    },
    owner,
    isLeader,
  })
  return {
    leadership,
    sync,
    bundleImages: dockerBundleImages(dockerDeps),
    bundleProjects: pypiBundleProjects(pypiDeps),
    gc,
    scrubber,
    offline,
    pulls,
    statistics: new Statistics(metadata, now),
    events: new EventRing(),
    cache,
    peers,
    manifests,
    documents,
    accesses,
    evictor,
    registries,
    indexes,
    fileHosts,
    pages,
    streamed,
  }
}

async function readTls(
  tls: NonNullable<Config['server']['tls']>,
): Promise<{ cert: Buffer; key: Buffer }> {
  const read = async (file: string, key: string) => {
    try {
      return await readFile(file)
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? 'error'
      throw new ConfigError(`server.tls.${key}: cannot read the file (${code})`, { cause: error })
    }
  }
  return { cert: await read(tls.cert, 'cert'), key: await read(tls.key, 'key') }
}

async function openOwnedMetadata(
  config: Config,
  logger: Logger,
  metrics: Metrics,
  owned: { close: () => Promise<void> }[],
): Promise<MetadataStore> {
  const redis = config.metadata.redis
  const ttls = [
    ...config.docker.registries.map((r) => r.tagTTL),
    ...config.pypi.indexes.map((i) => i.indexTTL),
  ]
  const store = await openMetadataStore(
    {
      storagePath: config.storage.path,
      redis: redis && {
        url: redis.url,
        sentinels: redis.sentinels,
        keyPrefix: redis.keyPrefix,
        connectTimeoutMs: redis.connectTimeout,
        commandTimeoutMs: redis.commandTimeout,
      },
      recordRetentionMs: recordRetentionMs(Math.max(0, ...ttls)),
      onError: (kind) => {
        metrics.metadataErrors.inc({ store: kind })
      },
    },
    logger,
  )
  owned.push(store)
  return store
}

async function openOwnedBlobStore(
  config: Config,
  logger: Logger,
  owned: { close: () => Promise<void> }[],
): Promise<BlobStorage> {
  // With Redis, replicas may share the volume: leave their downloads in tmp/ alone,
  // and clear up after replicas that died.
  const shared = config.metadata.redis !== undefined
  const blobs = config.storage.s3
    ? await openS3Store(config.storage.path, config.storage.s3, shared, owned)
    : await openFsStore(config, shared, owned)
  if (shared) owned.push(sweepStaleTemps(blobs, logger))
  return blobs
}

async function openFsStore(
  config: Config,
  shared: boolean,
  owned: { close: () => Promise<void> }[],
): Promise<BlobStore> {
  // Verified reads hash on worker threads so the main thread keeps serving.
  const hasher = config.storage.verifyOnRead !== false ? new FileHasher() : undefined
  if (hasher) {
    owned.push(hasher)
    hasher.warmUp()
  }
  return BlobStore.open(config.storage.path, {
    hasher,
    shared,
    trustVerified: config.storage.verifyOnRead === 'changed',
  })
}

/** storage.s3.redirect: presigned GETs of the bucket's blobs for the read-through cache. */
function presignIf(
  config: Config,
  blobs: BlobStorage,
): { presign?: (digest: string) => Promise<string> } {
  const redirect = config.storage.s3?.redirect
  if (!redirect || !isS3Store(blobs)) return {}
  return { presign: (digest) => blobs.presignGet(digest, redirect.expires) }
}

function isS3Store(blobs: BlobStorage): blobs is S3BlobStore {
  return 'presignGet' in blobs
}

/** The bucket's store; blobs in progress are spooled under storage.path/tmp. */
async function openS3Store(
  path: string,
  s3: NonNullable<Config['storage']['s3']>,
  shared: boolean,
  owned: { close: () => Promise<void> }[],
): Promise<S3BlobStore> {
  // Loaded only here: the AWS SDK costs about 0.2 s of start-up and 20 MB to every other cache.
  const { createS3Client } = await import('./storage/s3-client.ts')
  const { S3BlobStore } = await import('./storage/s3-store.ts')
  const client = createS3Client(s3)
  try {
    const store = await S3BlobStore.open({
      client,
      bucket: s3.bucket,
      prefix: s3.prefix,
      partSizeBytes: s3.partSize,
      spoolDir: join(path, 'tmp'),
      shared,
    })
    owned.push({ close: () => Promise.resolve(client.destroy()) })
    return store
  } catch (error) {
    client.destroy()
    throw error
  }
}
