/**
 * Pull statistics in Redis, shared by every replica: each adds its batches to
 * the same keys, so any replica answers for the cluster.
 *
 * Keys (after the store's prefix):
 *   stats:<g>:<start>                 hash "<subject id>\x1f<count>" -> number; expires with its bucket
 *   statsc:<g>:<start>:<subject id>   HyperLogLog of client addresses         } expire with
 *   statsc:<g>:<start>:*<protocol>    the same over a protocol, and `*all`    } their bucket
 *   statsb:<g>                        sorted set of bucket starts
 *   statsfirst, statslast             sorted sets subject id -> first / last pull (ms)
 *   statsref:<digest>                 set of reference ids (subject and tag or file); expires 90 d after the last
 * <g> is `hour` or `day`; subject ids are URI-encoded in key names.
 */
import type { Redis } from 'ioredis'
import {
  COUNT_NAMES,
  ZERO_COUNTS,
  addCounts,
  bucketSize,
  bucketStart,
  countsFrom,
  MAX_REFERENCES_PER_ARTIFACT,
  parseReferenceId,
  referenceId,
  type ArtifactReference,
  parseSubjectId,
  retentionOf,
  subjectId,
  type BucketUsage,
  type Granularity,
  type StatsProtocol,
  type SubjectUsage,
  type UsageAnswer,
  type UsageCounts,
  type UsageDelta,
  type UsageQuery,
} from './statistics.ts'

const GRANULARITIES: readonly Granularity[] = ['hour', 'day']
const SEP = '\u001f'

// Forgets subjects not pulled since ARGV[1], in both sorted sets at once.
const FORGET_SUBJECTS = `
local gone = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
for _, member in ipairs(gone) do redis.call('ZREM', KEYS[2], member) end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
return #gone`

// Adds a reference unless the set is full, and renews its expiry.
const ADD_REFERENCE = `
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 0 and redis.call('SCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1`

export class RedisStatistics {
  constructor(
    private readonly key: (suffix: string) => string,
    private readonly now: () => number,
  ) {}

  async add(redis: Redis, batch: readonly UsageDelta[]): Promise<void> {
    const multi = redis.multi()
    const now = this.now()
    for (const granularity of GRANULARITIES) {
      const expiries = new Map<string, number>()
      for (const delta of batch) {
        const start = bucketStart(granularity, delta.hour)
        const expireAt = start + bucketSize(granularity) + retentionOf(granularity)
        const id = subjectId(delta)
        const hash = this.#bucketKey(granularity, start)
        for (const name of COUNT_NAMES)
          if (delta.counts[name] !== 0)
            multi.hincrby(hash, `${id}${SEP}${name}`, delta.counts[name])
        expiries.set(hash, expireAt)
        if (delta.clients.length > 0) {
          for (const suffix of [encodeURIComponent(id), `*${delta.protocol}`, '*all']) {
            const hll = `${this.#clientsKey(granularity, start)}${suffix}`
            multi.pfadd(hll, ...delta.clients)
            expiries.set(hll, expireAt)
          }
        }
        multi.zadd(this.key(`statsb:${granularity}`), start, String(start))
      }
      for (const [key, at] of expiries) multi.pexpireat(key, at)
      multi.zremrangebyscore(
        this.key(`statsb:${granularity}`),
        '-inf',
        now - retentionOf(granularity) - bucketSize(granularity),
      )
    }
    for (const delta of batch) {
      const id = subjectId(delta)
      multi.zadd(this.key('statsfirst'), 'LT', delta.hour, id)
      multi.zadd(this.key('statslast'), 'GT', delta.lastPulled, id)
    }
    multi.eval(
      FORGET_SUBJECTS,
      2,
      this.key('statslast'),
      this.key('statsfirst'),
      now - retentionOf('day'),
    )
    const results = await multi.exec()
    const failed = results?.find(([error]) => error)
    if (failed?.[0]) throw failed[0]
  }

  async usage(redis: Redis, query: UsageQuery): Promise<UsageAnswer> {
    const { granularity } = query
    const starts = (
      await redis.zrangebyscore(this.key(`statsb:${granularity}`), query.from, '+inf')
    ).map(Number)
    const read = redis.pipeline()
    for (const start of starts) read.hgetall(this.#bucketKey(granularity, start))
    const hashes = ((await read.exec()) ?? []).map(([, value]) => value as Record<string, string>)

    const bySubject = new Map<string, UsageCounts>()
    const buckets: BucketUsage[] = []
    starts.forEach((start, i) => {
      const perSubject = new Map<string, Record<string, string>>()
      for (const [field, value] of Object.entries(hashes[i] ?? {})) {
        const cut = field.lastIndexOf(SEP)
        const id = field.slice(0, cut)
        const fields = perSubject.get(id) ?? {}
        fields[field.slice(cut + 1)] = value
        perSubject.set(id, fields)
      }
      const totals = new Map<StatsProtocol, UsageCounts>()
      for (const [id, fields] of perSubject) {
        const key = parseSubjectId(id)
        if (!key) continue
        const counts = countsFrom(fields)
        bySubject.set(id, addCounts(bySubject.get(id) ?? ZERO_COUNTS, counts))
        totals.set(key.protocol, addCounts(totals.get(key.protocol) ?? ZERO_COUNTS, counts))
      }
      for (const [protocol, counts] of totals) buckets.push({ start, protocol, counts })
    })

    const ids = [...bySubject.keys()]
    const clientKeys = (suffix: string) =>
      starts.map((start) => `${this.#clientsKey(granularity, start)}${suffix}`)
    const extra = redis.pipeline()
    for (const id of ids) {
      extra.pfcount(clientKeys(encodeURIComponent(id)))
      extra.zscore(this.key('statsfirst'), id)
      extra.zscore(this.key('statslast'), id)
    }
    for (const suffix of ['*all', '*docker', '*pypi']) extra.pfcount(clientKeys(suffix))
    const answers = starts.length === 0 ? [] : ((await extra.exec()) ?? []).map(([, v]) => v)
    const subjects: SubjectUsage[] = []
    ids.forEach((id, i) => {
      const key = parseSubjectId(id)
      if (!key) return
      subjects.push({
        ...key,
        counts: bySubject.get(id) ?? ZERO_COUNTS,
        clients: Number(answers[i * 3]) || 0,
        firstPulled: Number(answers[i * 3 + 1]) || 0,
        lastPulled: Number(answers[i * 3 + 2]) || 0,
      })
    })
    const totalAt = ids.length * 3
    return {
      subjects,
      buckets: buckets.sort((a, b) => a.start - b.start || a.protocol.localeCompare(b.protocol)),
      clients: {
        all: Number(answers[totalAt]) || 0,
        docker: Number(answers[totalAt + 1]) || 0,
        pypi: Number(answers[totalAt + 2]) || 0,
      },
    }
  }

  async addReferences(redis: Redis, references: readonly ArtifactReference[]): Promise<void> {
    const pipeline = redis.pipeline()
    for (const ref of references)
      pipeline.eval(
        ADD_REFERENCE,
        1,
        this.#referencesKey(ref.digest),
        referenceId(ref),
        MAX_REFERENCES_PER_ARTIFACT,
        retentionOf('day'),
      )
    const results = await pipeline.exec()
    const failed = results?.find(([error]) => error)
    if (failed?.[0]) throw failed[0]
  }

  async references(
    redis: Redis,
    digests: readonly string[],
  ): Promise<Map<string, ArtifactReference[]>> {
    const out = new Map<string, ArtifactReference[]>()
    if (digests.length === 0) return out
    const pipeline = redis.pipeline()
    for (const digest of digests) pipeline.smembers(this.#referencesKey(digest))
    const results = (await pipeline.exec()) ?? []
    digests.forEach((digest, i) => {
      const ids = (results[i]?.[1] ?? []) as string[]
      const refs = ids.sort().flatMap((id) => parseReferenceId(digest, id) ?? [])
      if (refs.length > 0) out.set(digest, refs)
    })
    return out
  }

  #referencesKey(digest: string): string {
    return this.key(`statsref:${encodeURIComponent(digest)}`)
  }

  #bucketKey(granularity: Granularity, start: number): string {
    return this.key(`stats:${granularity}:${start}`)
  }

  #clientsKey(granularity: Granularity, start: number): string {
    return this.key(`statsc:${granularity}:${start}:`)
  }
}
