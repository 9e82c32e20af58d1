/**
 * The embedded store's pull statistics: buckets in memory, written whole to
 * `statistics.json` (temp file, fsync, rename) after each batch, read back at
 * open. A batch arrives every few seconds from one process, so one small file
 * rewritten is simpler than a journal and loses at most the batch being
 * written when the process dies.
 */
import { open, readFile, rename, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { addToSketch, estimateDistinct, mergeSketches, type Sketch } from './distinct-sketch.ts'
import {
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

const FILE = 'statistics.json'
const GRANULARITIES: readonly Granularity[] = ['hour', 'day']

interface Cell {
  counts: UsageCounts
  clients: Sketch
}

interface Saved {
  version: 1
  /** [granularity, bucket start, subject id, counts, client sketch] */
  cells: [Granularity, number, string, UsageCounts, Sketch][]
  /** [subject id, first pulled, last pulled] */
  seen: [string, number, number][]
  /** [digest, reference id, last recorded]; absent in files from before references. */
  references?: [string, string, number][]
}

export class FsStatistics {
  /** `${granularity}:${start}` -> subject id -> cell. */
  readonly #buckets = new Map<string, Map<string, Cell>>()
  readonly #seen = new Map<string, { first: number; last: number }>()
  /** Digest -> reference id -> last time it was recorded (ms). */
  readonly #references = new Map<string, Map<string, number>>()
  /** Batches are written one after the other: each write replaces the whole file. */
  #writing: Promise<void> = Promise.resolve()

  private constructor(
    private readonly dir: string,
    private readonly now: () => number,
  ) {}

  static async open(dir: string, now: () => number): Promise<FsStatistics> {
    const statistics = new FsStatistics(dir, now)
    const text = await readFile(join(dir, FILE), 'utf8').catch((error: unknown) => {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined
      throw error
    })
    if (text !== undefined) statistics.#restore(JSON.parse(text) as Saved)
    statistics.#prune()
    return statistics
  }

  /**
   * Adds the batch and writes the file; if the write fails, the batch is taken
   * back out of memory too, so the caller's retry does not count it twice.
   */
  async add(batch: readonly UsageDelta[]): Promise<void> {
    const write = this.#writing.then(async () => {
      const undo = this.#apply(batch)
      try {
        await this.#save()
      } catch (error) {
        undo()
        throw error
      }
    })
    this.#writing = write.catch(() => undefined)
    await write
  }

  /** Applies the batch in memory; returns what puts memory back as it was. */
  #apply(batch: readonly UsageDelta[]): () => void {
    const cells = new Map<Cell, Cell | undefined>()
    const created: [string, string][] = []
    const seenBefore = new Map<string, { first: number; last: number } | undefined>()
    for (const delta of batch) {
      const id = subjectId(delta)
      for (const granularity of GRANULARITIES) {
        const name = `${granularity}:${bucketStart(granularity, delta.hour)}`
        const existing = this.#buckets.get(name)?.get(id)
        if (!existing) created.push([name, id])
        const cell = this.#cell(name, id)
        if (existing && !cells.has(cell))
          cells.set(cell, { counts: cell.counts, clients: [...cell.clients] })
        cell.counts = addCounts(cell.counts, delta.counts)
        addToSketch(cell.clients, delta.clients)
      }
      const seen = this.#seen.get(id)
      if (!seenBefore.has(id)) seenBefore.set(id, seen && { ...seen })
      if (seen) {
        seen.first = Math.min(seen.first, delta.hour)
        seen.last = Math.max(seen.last, delta.lastPulled)
      } else this.#seen.set(id, { first: delta.hour, last: delta.lastPulled })
    }
    this.#prune()
    return () => {
      for (const [cell, before] of cells) if (before) Object.assign(cell, before)
      for (const [name, id] of created) this.#buckets.get(name)?.delete(id)
      for (const [id, before] of seenBefore)
        if (before) this.#seen.set(id, before)
        else this.#seen.delete(id)
    }
  }

  /** Records references; written with the next batch (or now, when `save`). */
  async addReferences(references: readonly ArtifactReference[]): Promise<void> {
    const write = this.#writing.then(async () => {
      const undo: (() => void)[] = []
      const now = this.now()
      for (const ref of references) {
        let ids = this.#references.get(ref.digest)
        if (!ids) {
          const created = new Map<string, number>()
          this.#references.set(ref.digest, created)
          undo.push(() => this.#references.delete(ref.digest))
          ids = created
        }
        const id = referenceId(ref)
        const before = ids.get(id)
        if (before === undefined && ids.size >= MAX_REFERENCES_PER_ARTIFACT) continue
        const list = ids
        undo.push(() => (before === undefined ? list.delete(id) : list.set(id, before)))
        ids.set(id, now)
      }
      try {
        await this.#save()
      } catch (error) {
        for (const step of undo.reverse()) step()
        throw error
      }
    })
    this.#writing = write.catch(() => undefined)
    await write
  }

  references(digests: readonly string[]): Map<string, ArtifactReference[]> {
    const out = new Map<string, ArtifactReference[]>()
    for (const digest of digests) {
      const ids = this.#references.get(digest)
      if (!ids) continue
      const refs = [...ids.keys()].sort().flatMap((id) => parseReferenceId(digest, id) ?? [])
      if (refs.length > 0) out.set(digest, refs)
    }
    return out
  }

  usage(query: UsageQuery): UsageAnswer {
    const bySubject = new Map<string, { counts: UsageCounts; sketches: Sketch[] }>()
    const buckets: BucketUsage[] = []
    const all: Sketch[] = []
    const perProtocol: Record<StatsProtocol, Sketch[]> = { docker: [], pypi: [] }
    for (const [name, cells] of this.#buckets) {
      const [granularity, startText] = name.split(':')
      const start = Number(startText)
      if (granularity !== query.granularity || start < query.from) continue
      const totals: Record<StatsProtocol, UsageCounts | undefined> = {
        docker: undefined,
        pypi: undefined,
      }
      for (const [id, cell] of cells) {
        const key = parseSubjectId(id)
        if (!key) continue
        const row = bySubject.get(id) ?? { counts: ZERO_COUNTS, sketches: [] }
        row.counts = addCounts(row.counts, cell.counts)
        row.sketches.push(cell.clients)
        bySubject.set(id, row)
        totals[key.protocol] = addCounts(totals[key.protocol] ?? ZERO_COUNTS, cell.counts)
        all.push(cell.clients)
        perProtocol[key.protocol].push(cell.clients)
      }
      for (const protocol of ['docker', 'pypi'] as const) {
        const counts = totals[protocol]
        if (counts) buckets.push({ start, protocol, counts })
      }
    }
    const subjects: SubjectUsage[] = []
    for (const [id, row] of bySubject) {
      const key = parseSubjectId(id)
      const seen = this.#seen.get(id)
      if (!key) continue
      subjects.push({
        ...key,
        counts: row.counts,
        clients: estimateDistinct(mergeSketches(row.sketches)),
        firstPulled: seen?.first ?? 0,
        lastPulled: seen?.last ?? 0,
      })
    }
    buckets.sort((a, b) => a.start - b.start || a.protocol.localeCompare(b.protocol))
    return {
      subjects,
      buckets,
      clients: {
        all: estimateDistinct(mergeSketches(all)),
        docker: estimateDistinct(mergeSketches(perProtocol.docker)),
        pypi: estimateDistinct(mergeSketches(perProtocol.pypi)),
      },
    }
  }

  #cell(name: string, id: string): Cell {
    let cells = this.#buckets.get(name)
    if (!cells) this.#buckets.set(name, (cells = new Map<string, Cell>()))
    let cell = cells.get(id)
    if (!cell) cells.set(id, (cell = { counts: ZERO_COUNTS, clients: [] }))
    return cell
  }

  /** Drops buckets past their retention, and subjects not pulled within the daily one. */
  #prune(): void {
    const now = this.now()
    for (const name of this.#buckets.keys()) {
      const [granularity, start] = name.split(':') as [Granularity, string]
      if (Number(start) + bucketSize(granularity) <= now - retentionOf(granularity))
        this.#buckets.delete(name)
    }
    for (const [id, seen] of this.#seen)
      if (seen.last <= now - retentionOf('day')) this.#seen.delete(id)
    for (const [digest, ids] of this.#references) {
      for (const [id, at] of ids) if (at <= now - retentionOf('day')) ids.delete(id)
      if (ids.size === 0) this.#references.delete(digest)
    }
  }

  #restore(saved: Saved): void {
    for (const [granularity, start, id, counts, clients] of saved.cells) {
      const cell = this.#cell(`${granularity}:${start}`, id)
      cell.counts = countsFrom(counts)
      cell.clients = mergeSketches([clients])
    }
    for (const [id, first, last] of saved.seen) this.#seen.set(id, { first, last })
    for (const [digest, id, at] of saved.references ?? []) {
      const ids = this.#references.get(digest) ?? new Map<string, number>()
      ids.set(id, at)
      this.#references.set(digest, ids)
    }
  }

  async #save(): Promise<void> {
    const saved: Saved = { version: 1, cells: [], seen: [], references: [] }
    for (const [digest, ids] of this.#references)
      for (const [id, at] of ids) saved.references?.push([digest, id, at])
    for (const [name, cells] of this.#buckets) {
      const [granularity, start] = name.split(':') as [Granularity, string]
      for (const [id, cell] of cells)
        saved.cells.push([granularity, Number(start), id, cell.counts, cell.clients])
    }
    for (const [id, seen] of this.#seen) saved.seen.push([id, seen.first, seen.last])
    const path = join(this.dir, FILE)
    const temp = `${path}.tmp`
    try {
      const fh = await open(temp, 'w')
      try {
        await fh.writeFile(JSON.stringify(saved))
        await fh.sync()
      } finally {
        await fh.close()
      }
      await rename(temp, path)
    } catch (error) {
      await rm(temp, { force: true }).catch(() => undefined)
      throw error
    }
  }
}
