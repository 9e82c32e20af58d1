/**
 * The status page in a real browser (Debian's chromium, driven by
 * puppeteer-core) after real pulls through skopeo and pip: what a person sees
 * on each tab, with JavaScript off, on a phone-wide screen, and a tag shown as
 * served stale once its registry is gone. With PULLTHROUGH_SCREENSHOTS=<dir>
 * it also saves a screenshot of each tab there (docs/images/ holds them).
 */
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import puppeteer, { type Browser, type Page } from 'puppeteer-core'
import t, { type Test } from 'tap'
import { request } from 'undici'
import { startApp, type TestApp } from '../helpers/app.ts'
import { tempDir } from '../helpers/config.ts'
import { buildImage, pullImage } from '../helpers/images.ts'
import { metricValue } from '../helpers/pool.ts'
import { pipInstallThrough } from '../helpers/pypi-packages.ts'
import { indexYaml, startPypiUpstream } from '../helpers/pypi-upstream.ts'
import { startRegistry } from '../helpers/registry.ts'

const CHROMIUM = '/usr/bin/chromium'
const TOKEN = 'status-page-token-0123456789'
const KiB = 1024
/** Bound on one page load. */
const PAGE_TIMEOUT_MS = 15_000
const SCREENSHOTS = process.env.PULLTHROUGH_SCREENSHOTS

async function launch(t: Test): Promise<Browser> {
  const browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    // As root in a container: no sandbox; /dev/shm may be small.
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
  })
  t.teardown(() => browser.close())
  return browser
}

async function open(browser: Browser, width = 1280): Promise<Page> {
  const page = await browser.newPage()
  await page.setJavaScriptEnabled(false)
  await page.setViewport({ width, height: 900 })
  await page.authenticate({ username: 'admin', password: TOKEN })
  return page
}

async function visit(page: Page, url: string, shot?: string): Promise<number> {
  const res = await page.goto(url, { waitUntil: 'load', timeout: PAGE_TIMEOUT_MS })
  if (SCREENSHOTS !== undefined && shot !== undefined) {
    await mkdir(SCREENSHOTS, { recursive: true })
    await page.screenshot({ path: join(SCREENSHOTS, `${shot}.png`), fullPage: true })
  }
  return res?.status() ?? 0
}

/**
 * The text of the first element matching `selector`, whitespace collapsed.
 * Expressions are strings: the tests are compiled without the DOM library.
 */
async function text(page: Page, selector: string): Promise<string> {
  const found = await page.evaluate(
    `(document.querySelector(${JSON.stringify(selector)})?.textContent ?? '').replace(/\\s+/g, ' ').trim()`,
  )
  return String(found)
}

/** Rows of a table as arrays of cell texts. */
async function rows(page: Page, selector: string): Promise<string[][]> {
  const found = await page.evaluate(
    `[...document.querySelectorAll(${JSON.stringify(`${selector} tbody tr`)})].map((tr) =>
      [...tr.querySelectorAll('td')].map((td) => td.textContent.replace(/\\s+/g, ' ').trim()))`,
  )
  return found as string[][]
}

function pullCount(app: TestApp, key: 'repository' | 'project', name?: string): number {
  return app.logs.lines.filter(
    (l) =>
      l.msg === 'pull' &&
      l.action === 'get' &&
      (name === undefined ? l[key] !== undefined : l[key] === name),
  ).length
}

t.test(
  'the status page shows what real pulls did, and a stale tag once its registry is gone',
  async (t) => {
    const registry = await startRegistry(t)
    const image = await buildImage(join(await tempDir(t, 'pt-img-'), 'app'), {
      layers: [4 * KiB, 200 * KiB],
    })
    const pushed = await registry.pushImage(image, 'library/app:1.0')
    const index = await startPypiUpstream(t)
    const app = await startApp(t, {
      yaml: `docker:
  registries:
    - { name: docker.io, default: true, tagTTL: 1ms, upstreams: [{ url: "${registry.url}" }], retry: { attempts: 1 } }
${indexYaml([index])}admin: { token: "${TOKEN}" }
`,
    })
    const host = new URL(app.url).host
    await pullImage(t, `${host}/app:1.0`, join(await tempDir(t, 'pt-out-'), 'app'))
    const run = await pipInstallThrough(t, app.url, ['app'])
    t.equal(run.code, 0, run.stderr)
    await app.app.services.cache.settled()
    await app.app.services.pulls?.flush()

    const browser = await launch(t)
    const denied = await request(`${app.url}/-/`)
    await denied.body.dump()
    t.equal(denied.statusCode, 401, 'without the token: 401, and the browser asks for it')
    t.equal(denied.headers['www-authenticate'], 'Basic realm="pullthrough"')

    const page = await open(browser)
    t.equal(await visit(page, `${app.url}/-/`), 200)
    const total = pullCount(app, 'repository') + pullCount(app, 'project')
    t.equal(
      await text(page, '#pulls-hour .value'),
      String(total),
      'pulls in the last hour: every GET',
    )
    const overview = await rows(page, '#repositories')
    const appRow = overview.find((r) => r[1] === 'library/app')
    t.equal(appRow?.[2], String(pullCount(app, 'repository', 'library/app')), 'library/app pulls')
    const projects = await rows(page, '#projects')
    t.same(
      projects.map((r) => r[1]).sort(),
      ['app', 'lib'],
      'pip pulled app and its dependency lib',
    )
    t.match(await text(page, '#disk .sub'), /of 50\.0 GiB · \d+ artifacts/)
    t.ok(
      await page.$('svg.chart[aria-label^="Pulls per hour"]'),
      'the chart renders without JavaScript',
    )

    // Pulled again: layers from the cache, the tag revalidated (tagTTL 1 ms).
    await pullImage(t, `${host}/app:1.0`, join(await tempDir(t, 'pt-out-'), 'again'))
    await app.app.services.pulls?.flush()
    await visit(page, `${app.url}/-/`)
    t.equal(
      await text(page, '#pulls-hour .value'),
      String(pullCount(app, 'repository') + pullCount(app, 'project')),
    )
    t.notMatch(await text(page, '#hit-ratio .value'), /^0\.0%$/, 'the second pull hit the cache')

    // The registry goes away: the next tag resolution is served stale.
    await registry.stop()
    const res = await request(`${app.url}/v2/library/app/manifests/1.0`, {
      headers: { accept: pushed.mediaType },
    })
    t.equal(res.statusCode, 200)
    await res.body.dump()
    await app.app.services.pulls?.flush()
    await visit(page, `${app.url}/-/`, 'overview')
    t.equal(await text(page, '#stale .value'), '1', 'served stale, 24 h')
    const { staleServed } = app.app.deps.metrics
    t.equal(await metricValue(staleServed, { protocol: 'docker' }), 1, 'and in /metrics')
    const recent = await rows(page, '#events')
    t.match(
      recent[0],
      [String, 'docker', 'library/app', '1.0', 'stale'],
      'the newest pull is shown stale',
    )

    t.equal(
      await visit(page, `${app.url}/-/repositories?window=24h&sort=bytes`, 'repositories'),
      200,
    )
    const byBytes = await rows(page, '#repositories')
    t.equal(byBytes[0]?.[1], 'library/app')
    t.equal(byBytes[0]?.[5], '1', 'one stale pull of library/app')
    await visit(page, `${app.url}/-/repositories?rollup=namespace`)
    t.equal((await rows(page, '#repositories'))[0]?.[1], 'library', 'rolled up per namespace')

    const layer = pushed.manifests[0]?.layers[1] ?? ''
    t.equal(await visit(page, `${app.url}/-/catalog?digest=${layer.slice(0, 20)}`, 'catalog'), 200)
    const found = await rows(page, '#catalog')
    t.equal(found.length, 1, 'searching by a digest prefix finds the layer')
    t.equal(found[0]?.[0], layer)
    t.equal(found[0]?.[1], 'layer', 'its type')
    t.match(found[0]?.[2], /^20\d\.\d KiB$/, 'its size: about 200 KiB, compressed')
    t.equal(found[0]?.[6], 'library/app', 'pulled through library/app')
    await visit(page, `${app.url}/-/catalog`, 'catalog')
    const manifest = (await rows(page, '#catalog')).find((row) => row[1] === 'manifest')
    t.equal(manifest?.[6], 'library/app:1.0 (stale)', 'the catalog marks the tag stale')

    t.equal(await visit(page, `${app.url}/-/upstreams`, 'upstreams'), 200)
    const mirrors = await rows(page, '#upstreams')
    const docker = mirrors.find((r) => r[0] === 'docker')
    t.equal(docker?.[3], registry.url)
    t.match(docker?.[9], /^(connect|reset|timeout\w*) /, 'the last failure names what went wrong')

    t.equal(await visit(page, `${app.url}/-/connect`, 'connect'), 200)
    const daemon = JSON.parse(await text(page, '#daemon-json')) as Record<string, string[]>
    t.same(daemon['registry-mirrors'], [app.url], 'daemon.json names this server')
    t.match(await page.content(), `index-url = ${app.url}/simple/`)

    const phone = await open(browser, 390)
    for (const path of ['/-/', '/-/repositories', '/-/catalog', '/-/upstreams', '/-/connect']) {
      await visit(phone, `${app.url}${path}`, path === '/-/' ? 'overview-phone' : undefined)
      const width = Number(await phone.evaluate('document.documentElement.scrollWidth'))
      t.ok(width <= 390, `${path} fits a 390 px wide screen (${width})`)
    }
  },
)
