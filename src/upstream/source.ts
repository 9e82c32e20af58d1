import type { UpstreamPool } from './pool.ts'

/** Where an upstream answer comes from: a pool and what to ask each of its mirrors. */
export interface UpstreamSource {
  readonly pool: UpstreamPool
  /** Path relative to each mirror's base URL. */
  readonly path: string
  readonly authScope?: string | undefined
  readonly headers?: Readonly<Record<string, string>>
}
