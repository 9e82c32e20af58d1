/**
 * Every metric pullthrough exports, defined once on a registry passed in.
 * Labels stay low-cardinality: protocol, route, registry/index (pool), upstream
 * name, result. Never a repository, digest or client address.
 */
import { Counter, Gauge, Histogram, collectDefaultMetrics, type Registry } from 'prom-client'
import { BatchedCounter } from './batched-counter.ts'

const PREFIX = 'pullthrough_'

/** Buckets for request and upstream latencies, in seconds. */
const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120]

export interface Metrics {
  readonly registry: Registry
  readonly httpRequests: BatchedCounter<'protocol' | 'route' | 'method' | 'status'>
  readonly httpRequestDuration: Histogram<'protocol' | 'route'>
  readonly cacheRequests: BatchedCounter<'protocol' | 'pool' | 'result'>
  readonly bytesServed: BatchedCounter<'protocol' | 'source'>
  readonly upstreamRequestDuration: Histogram<'pool' | 'upstream' | 'outcome'>
  readonly upstreamErrors: Counter<'pool' | 'upstream' | 'reason'>
  readonly upstreamFailovers: Counter<'pool'>
  readonly upstreamResumes: Counter<'pool' | 'upstream'>
  readonly upstreamCircuitOpen: Gauge<'pool' | 'upstream'>
  readonly offline: Gauge
  readonly scrubRunning: Gauge
  readonly scrubBlobs: Counter<'result'>
  readonly scrubBytes: Counter
  readonly scrubLastCompleted: Gauge
  readonly syncRunning: Gauge<'list'>
  readonly syncItems: Counter<'list' | 'result'>
  readonly syncBytes: Counter<'list'>
  readonly syncLastSuccess: Gauge<'list'>
  readonly digestMismatches: Counter<'pool' | 'upstream'>
  readonly fillsInFlight: Gauge
  readonly storageWriteErrors: Counter
  readonly storageCorruptions: Counter
  readonly cacheSizeBytes: Gauge
  readonly cacheMaxSizeBytes: Gauge
  readonly evictions: Counter
  readonly gcTagsDropped: Counter
  readonly evictedBytes: Counter
  readonly metadataErrors: Counter<'store'>
  readonly indexLinksDropped: Counter<'pool' | 'reason'>
  readonly upstreamRedirectsRefused: Counter<'pool' | 'upstream' | 'reason'>
  readonly httpConnectionsRejected: Counter
  readonly accessDenied: Counter<'protocol' | 'reason'>
  readonly rateLimited: Counter<'limit'>
  readonly leader: Gauge
  readonly replicaFills: Counter<'role'>
  readonly statisticsDropped: Counter
  readonly bandwidthSaved: BatchedCounter<'protocol'>
  readonly staleServed: BatchedCounter<'protocol'>
}

/** Registers all metrics (and Node's default metrics) on `registry`. */
export function createMetrics(
  registry: Registry,
  options: { defaultMetrics?: boolean } = {},
): Metrics {
  if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: registry, prefix: PREFIX })
  const registers = [registry]
  return {
    registry,
    httpRequests: new BatchedCounter({
      name: `${PREFIX}http_requests_total`,
      help: 'HTTP requests answered, by protocol, route template, method and status code.',
      labelNames: ['protocol', 'route', 'method', 'status'],
      registers,
    }),
    httpRequestDuration: new Histogram({
      name: `${PREFIX}http_request_duration_seconds`,
      help: 'Time from request to the end of the response.',
      labelNames: ['protocol', 'route'],
      buckets: LATENCY_BUCKETS,
      registers,
    }),
    cacheRequests: new BatchedCounter({
      name: `${PREFIX}cache_requests_total`,
      help: 'Served artifacts by cache result: hit, miss, stale or revalidated.',
      labelNames: ['protocol', 'pool', 'result'],
      registers,
    }),
    bytesServed: new BatchedCounter({
      name: `${PREFIX}bytes_served_total`,
      help: 'Bytes sent to clients, by where they came from: cache or upstream.',
      labelNames: ['protocol', 'source'],
      registers,
    }),
    upstreamRequestDuration: new Histogram({
      name: `${PREFIX}upstream_request_duration_seconds`,
      help: 'Time to response headers from an upstream mirror.',
      labelNames: ['pool', 'upstream', 'outcome'],
      buckets: LATENCY_BUCKETS,
      registers,
    }),
    upstreamErrors: new Counter({
      name: `${PREFIX}upstream_errors_total`,
      help: 'Failed upstream requests, by reason (connect, timeout, status_5xx, status_429, reset, ...).',
      labelNames: ['pool', 'upstream', 'reason'],
      registers,
    }),
    upstreamFailovers: new Counter({
      name: `${PREFIX}upstream_failovers_total`,
      help: 'Requests moved from one upstream mirror to the next.',
      labelNames: ['pool'],
      registers,
    }),
    upstreamResumes: new Counter({
      name: `${PREFIX}upstream_resumes_total`,
      help: 'Broken transfers resumed with a Range request.',
      labelNames: ['pool', 'upstream'],
      registers,
    }),
    upstreamCircuitOpen: new Gauge({
      name: `${PREFIX}upstream_circuit_open`,
      help: '1 while the circuit breaker of an upstream mirror is open.',
      labelNames: ['pool', 'upstream'],
      registers,
    }),
    offline: new Gauge({
      name: `${PREFIX}offline`,
      help: '1 while offline mode is on: no upstream is contacted.',
      registers,
    }),
    scrubRunning: new Gauge({
      name: `${PREFIX}scrub_running`,
      help: '1 while a scrub re-hashes the stored blobs.',
      registers,
    }),
    scrubBlobs: new Counter({
      name: `${PREFIX}scrub_blobs_total`,
      help: 'Stored blobs a scrub checked, by result: ok, corrupt (quarantined), missing or changed.',
      labelNames: ['result'],
      registers,
    }),
    scrubBytes: new Counter({
      name: `${PREFIX}scrub_read_bytes_total`,
      help: 'Bytes a scrub read and hashed.',
      registers,
    }),
    scrubLastCompleted: new Gauge({
      name: `${PREFIX}scrub_last_completed_timestamp_seconds`,
      help: 'When the last scrub on this replica finished (Unix time).',
      registers,
    }),
    syncRunning: new Gauge({
      name: `${PREFIX}sync_running`,
      help: '1 while this replica runs the sync list.',
      labelNames: ['list'],
      registers,
    }),
    syncItems: new Counter({
      name: `${PREFIX}sync_items_total`,
      help: 'Tags and versions sync lists checked, by result: new, updated, unchanged or failed.',
      labelNames: ['list', 'result'],
      registers,
    }),
    syncBytes: new Counter({
      name: `${PREFIX}sync_fetched_bytes_total`,
      help: 'Bytes sync lists fetched from upstreams into the cache.',
      labelNames: ['list'],
      registers,
    }),
    syncLastSuccess: new Gauge({
      name: `${PREFIX}sync_last_success_timestamp_seconds`,
      help: 'When the sync list last finished with no failed item on this replica (Unix time).',
      labelNames: ['list'],
      registers,
    }),
    digestMismatches: new Counter({
      name: `${PREFIX}digest_mismatch_total`,
      help: 'Transfers discarded because the content did not hash to its digest.',
      labelNames: ['pool', 'upstream'],
      registers,
    }),
    fillsInFlight: new Gauge({
      name: `${PREFIX}fills_in_flight`,
      help: 'Upstream transfers currently filling the cache.',
      registers,
    }),
    storageWriteErrors: new Counter({
      name: `${PREFIX}storage_write_errors_total`,
      help: 'Fills served through without caching because the disk could not be written.',
      registers,
    }),
    bandwidthSaved: new BatchedCounter({
      name: `${PREFIX}bandwidth_saved_bytes_total`,
      help: 'Bytes served from the cache (hits and stale answers): upstream traffic saved.',
      labelNames: ['protocol'],
      registers,
    }),
    staleServed: new BatchedCounter({
      name: `${PREFIX}stale_served_total`,
      help: 'Artifacts served from the cache because every upstream failed.',
      labelNames: ['protocol'],
      registers,
    }),
    statisticsDropped: new Counter({
      name: `${PREFIX}statistics_dropped_total`,
      help: 'Pulls left out of the statistics because too many were pending while the metadata store failed.',
      registers,
    }),
    storageCorruptions: new Counter({
      name: `${PREFIX}storage_corruptions_total`,
      help: 'Stored blobs that no longer matched their digest when read; removed and fetched again.',
      registers,
    }),
    cacheSizeBytes: new Gauge({
      name: `${PREFIX}cache_size_bytes`,
      help: 'Bytes of verified content in the blob store.',
      registers,
    }),
    cacheMaxSizeBytes: new Gauge({
      name: `${PREFIX}cache_max_size_bytes`,
      help: 'The configured storage.maxSize.',
      registers,
    }),
    gcTagsDropped: new Counter({
      name: `${PREFIX}gc_tags_dropped_total`,
      help: 'Tags gc dropped under retention.keepTags.',
      registers,
    }),
    evictions: new Counter({
      name: `${PREFIX}evictions_total`,
      help: 'Blobs evicted to keep the cache under storage.maxSize.',
      registers,
    }),
    evictedBytes: new Counter({
      name: `${PREFIX}evicted_bytes_total`,
      help: 'Bytes evicted to keep the cache under storage.maxSize.',
      registers,
    }),
    metadataErrors: new Counter({
      name: `${PREFIX}metadata_errors_total`,
      help: 'Metadata store calls that failed (store unavailable or timed out).',
      labelNames: ['store'],
      registers,
    }),
    indexLinksDropped: new Counter({
      name: `${PREFIX}index_links_dropped_total`,
      help: 'File links of upstream index pages left out of served pages (invalid, or host not allowed).',
      labelNames: ['pool', 'reason'],
      registers,
    }),
    upstreamRedirectsRefused: new Counter({
      name: `${PREFIX}upstream_redirects_refused_total`,
      help: 'Redirects, token realms and upstream-given URLs refused by the trust policy, by reason (downgrade, address, host_not_allowed, foreign_challenge, ...).',
      labelNames: ['pool', 'upstream', 'reason'],
      registers,
    }),
    httpConnectionsRejected: new Counter({
      name: `${PREFIX}http_connections_rejected_total`,
      help: 'Client connections answered 503 because server.maxConnections were open.',
      registers,
    }),
    accessDenied: new Counter({
      name: `${PREFIX}access_denied_total`,
      help: 'Requests refused by client auth: wrong credentials, sign-in needed, access or proxy rules, token scope.',
      labelNames: ['protocol', 'reason'],
      registers,
    }),
    leader: new Gauge({
      name: `${PREFIX}leader`,
      help: '1 while this replica leads scheduled work (sync lists, scrub, retention gc).',
      registers,
    }),
    replicaFills: new Counter({
      name: `${PREFIX}replica_fills_total`,
      help: 'Cold blobs by what this replica did: fetched them for all (owner), streamed them from the replica fetching them (joiner), or took a fill over from a replica that died (takeover).',
      labelNames: ['role'],
      registers,
    }),
    rateLimited: new Counter({
      name: `${PREFIX}rate_limited_total`,
      help: 'Requests answered 429 because their client went over limits.requests or limits.upstreamMisses.',
      labelNames: ['limit'],
      registers,
    }),
  }
}
