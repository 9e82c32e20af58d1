/**
 * retention.keepTags: of each repository's cached tags, the newest N are
 * kept and the others' records dropped, so the manifests and layers only they
 * used are no longer served for them and age out (retention.unusedFor, the
 * size cap). Newest is when the tag came to point at its digest, as this cache
 * saw it. A tag whose manifest is pinned is always kept and takes no place
 * among the N.
 */
import type { TagRecord } from '../metadata/store.ts'
import { tagOfRecordName } from './manifests.ts'

export interface TagVerdict {
  /** Tags dropped, newest first. */
  readonly dropped: readonly string[]
  /** The stored record names to delete: each dropped tag and its narrower views. */
  readonly records: readonly string[]
  /** Tags kept beyond the N because pinned. */
  readonly pinned: number
}

/** Which of a repository's tag records (by stored name) go when `keep` tags stay. */
export function oldTags(
  records: ReadonlyMap<string, TagRecord>,
  keep: number,
  pins: ReadonlySet<string>,
): TagVerdict {
  const byTag = new Map<string, { names: string[]; at: number; pinned: boolean }>()
  for (const [name, record] of records) {
    const tag = tagOfRecordName(name)
    const entry = byTag.get(tag) ?? { names: [], at: 0, pinned: false }
    entry.names.push(name)
    entry.at = Math.max(entry.at, record.updatedAt ?? record.fetchedAt)
    entry.pinned ||= pins.has(record.digest)
    byTag.set(tag, entry)
  }
  const unpinned = [...byTag].filter(([, e]) => !e.pinned)
  // Newest first; equal times by name, so a run is repeatable.
  unpinned.sort(([a, x], [b, y]) => y.at - x.at || (a < b ? -1 : a > b ? 1 : 0))
  const gone = unpinned.slice(keep)
  return {
    dropped: gone.map(([tag]) => tag),
    records: gone.flatMap(([, e]) => e.names),
    pinned: byTag.size - unpinned.length,
  }
}
