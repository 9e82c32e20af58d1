import t from 'tap'
import type { ProjectPage } from '../../src/pypi/model.ts'
import { RENDERED_PAGES_MEMORY_BYTES, RenderedPages } from '../../src/pypi/rendered-pages.ts'

const page = (name: string): ProjectPage => ({ name, files: [] })

t.test('a page object is rendered once per key; a new page object is rendered again', async (t) => {
  const pages = new RenderedPages()
  let renders = 0
  const render = (text: string) => () => {
    renders++
    return text
  }
  const first = page('lib')
  const body = pages.body('pypi lib html /pypi/pypi', first, render('<html>1</html>'))
  t.equal(body.toString(), '<html>1</html>')
  t.equal(pages.body('pypi lib html /pypi/pypi', first, render('unused')), body, 'the same bytes')
  t.equal(renders, 1, 'rendered once')
  t.equal(pages.body('pypi lib json /pypi/pypi', first, render('{}')).toString(), '{}')
  t.equal(renders, 2, 'another format is another body')
  // What the page cache hands out after a refresh (or a read from the store) is a new object.
  const refreshed = page('lib')
  const after = pages.body('pypi lib html /pypi/pypi', refreshed, render('<html>2</html>'))
  t.equal(after.toString(), '<html>2</html>', 'a refreshed page is never served from an old render')
  t.equal(renders, 3)
})

t.test('holds at most RENDERED_PAGES_MEMORY_BYTES', async (t) => {
  const pages = new RenderedPages()
  const big = 'x'.repeat(RENDERED_PAGES_MEMORY_BYTES / 4)
  const held = Array.from({ length: 5 }, (_, i) => page(`p${i}`))
  let renders = 0
  for (const [i, p] of held.entries()) pages.body(`k${i}`, p, () => (renders++, big))
  t.equal(renders, 5)
  pages.body('k4', held[4] ?? page('?'), () => (renders++, big))
  t.equal(renders, 5, 'the newest is still held')
  pages.body('k0', held[0] ?? page('?'), () => (renders++, big))
  t.equal(renders, 6, 'the oldest was dropped to stay within the bound')
})
