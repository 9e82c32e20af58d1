/**
 * Rendered project pages, so a warm page GET renders nothing: a page of 300
 * files took about 0.7 ms of CPU per GET to render (bench/RESULTS.md,
 * `npm run bench:pypi-static`), and pip asks for every page of a resolve.
 *
 * A body is kept with the page object it was rendered from and served only
 * while the page cache hands out that same object: a refreshed or re-read page
 * is a new object, so it is rendered again. Bounded by bytes.
 */
import { Lru } from '../cache/lru.ts'
import type { ProjectPage } from './model.ts'

/** Bytes of rendered pages kept; a project page is tens of KB, one with thousands of files a few MB. */
export const RENDERED_PAGES_MEMORY_BYTES = 16 * 1024 * 1024

interface Rendered {
  readonly page: ProjectPage
  readonly body: Buffer
}

export class RenderedPages {
  readonly #bodies = new Lru<Rendered>(RENDERED_PAGES_MEMORY_BYTES, (held) => held.body.length)

  /** `page` as rendered by `render` under `key` (its index, project, format and URL prefix). */
  body(key: string, page: ProjectPage, render: () => string): Buffer {
    const held = this.#bodies.get(key)
    if (held?.page === page) return held.body
    const body = Buffer.from(render())
    this.#bodies.set(key, { page, body })
    return body
  }
}
