/** What a validated PyPI request is for, and what the pypi routes are given to serve it. */
import type { IndexPages } from '../cache/index-pages.ts'
import type { ReadThrough } from '../cache/read-through.ts'
import type { StreamedDocuments } from '../cache/streamed-documents.ts'
import type { Logger } from '../observability/logger.ts'
import type { Metrics } from '../observability/metrics.ts'
import { PypiRemote, type IndexPool } from './remote.ts'

export interface IndexEntry {
  readonly name: string
  readonly default: boolean
  /** How long a project page is served without asking the upstream (ms). */
  readonly indexTTL: number
  /** A project the upstreams answer 404 for keeps its cached page (`keep`), or it goes (`drop`). */
  readonly onUpstreamNotFound: 'keep' | 'drop'
}

export type { IndexPool }

/** Where an index's files may come from (upstream/file-hosts.ts). */
export interface FileHostsLike {
  allows(url: string): boolean
  locate(url: string): { readonly pool: IndexPool; readonly path: string } | undefined
}

export interface PypiRoutesDeps {
  readonly indexes: readonly IndexEntry[]
  readonly pools: ReadonlyMap<string, IndexPool>
  readonly fileHosts: ReadonlyMap<string, FileHostsLike>
  readonly pages: IndexPages
  /** Project lists, files without a sha256, legacy JSON documents: streamed, cached whole. */
  readonly streamed: StreamedDocuments
  readonly cache: ReadThrough
  readonly logger: Logger
  readonly metrics: Metrics
  /** server.publicUrl: the base of absolute URLs in answers (else they are relative). */
  readonly publicUrl?: string | undefined
}

/** An index a request is for, with what serving it needs. */
export interface IndexTarget {
  readonly index: IndexEntry
  /** The index's upstream conversations. */
  readonly remote: PypiRemote
  readonly files: FileHostsLike
  /** URL prefix of this index's routes: `/pypi/<index>`. */
  readonly prefix: string
}

/** The configured index named `name`, ready to ask; undefined when none is. */
export function indexTarget(
  deps: Pick<PypiRoutesDeps, 'indexes' | 'pools' | 'fileHosts'>,
  name: string | undefined,
): IndexTarget | undefined {
  const index = deps.indexes.find((i) => i.name === name)
  const pool = index && deps.pools.get(index.name)
  const files = index && deps.fileHosts.get(index.name)
  if (!index || !pool || !files) return undefined
  return { index, remote: new PypiRemote(pool, index.name), files, prefix: `/pypi/${index.name}` }
}
