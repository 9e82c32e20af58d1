/**
 * `pullthrough export` and `pullthrough import`: the server does the work
 * (docs/api.md); these move the bundle between it and a file, with a
 * progress bar and a summary. An export is read back as it arrives (every
 * entry checked against its digest) and renamed into place only once whole,
 * so a cut or a corrupt stream never leaves a file that looks like a bundle.
 */
import { randomBytes } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { open, rename, rm, stat } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'
import { Transform, type Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { SingleBar } from 'cli-progress'
import { request } from 'undici'
import type { ImportReport } from '../bundle/import.ts'
import { imageName, type BundleManifest } from '../bundle/format.ts'
import { checkContent, readBundle } from '../bundle/read.ts'
import { formatBytes } from '../insight/format.ts'
import {
  apiUrl,
  CLIENT_TIMEOUT_MS,
  ClientError,
  errorMessage,
  needsToken,
  unreachable,
} from './api-client.ts'
import type { ClientOptions } from './commands.ts'

/** Longest artifact name shown beside the bar. */
const MAX_SHOWN_NAME = 50

export interface ExportOptions extends ClientOptions {
  readonly request: Readonly<Record<string, unknown>>
  readonly out: string
  readonly progress: NodeJS.WriteStream
}

export async function exportCommand(options: ExportOptions): Promise<BundleManifest> {
  const startedAt = Date.now()
  const res = await send(options, 'export', JSON.stringify(options.request), 'application/json')
  const temp = join(
    dirname(options.out),
    `.${basename(options.out)}.${randomBytes(6).toString('hex')}.partial`,
  )
  const file = await open(temp, 'wx')
  const bar = progressBar(options.progress)
  let received = 0
  let total = 1
  try {
    const tap = new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        received += chunk.length
        bar?.update(Math.min(received, total))
        file.write(chunk).then(() => callback(null, chunk), callback)
      },
    })
    const arriving = pipeline(res.body, tap)
    arriving.catch(() => undefined)
    const manifest = await readBundle(
      tap,
      {
        manifest(m) {
          // Entries plus a 512-byte header each: close enough for a bar.
          total = m.entries.reduce((n, e) => n + e.size + 512, 2048)
          bar?.start(total, 0, { current: '' })
          return Promise.resolve()
        },
        content: checkContent,
      },
      (entry) => bar?.update(Math.min(received, total), { current: shorten(entry.path) }),
    )
    await arriving
    await file.sync()
    await file.close()
    await rename(temp, options.out)
    bar?.update(total)
    bar?.stop()
    const seconds = (Date.now() - startedAt) / 1000
    if (options.json)
      options.write(
        `${JSON.stringify({ out: options.out, bytes: received, seconds, ...manifest }, null, 2)}\n`,
      )
    else options.write(exportSummary(options.out, manifest, received, seconds))
    return manifest
  } catch (error) {
    bar?.stop()
    await file.close().catch(() => undefined)
    await rm(temp, { force: true })
    throw error instanceof ClientError
      ? error
      : new ClientError(`the export failed, nothing was written: ${(error as Error).message}`)
  }
}

export interface ImportOptions extends ClientOptions {
  readonly file: string
  readonly pin: boolean
  readonly progress: NodeJS.WriteStream
}

export async function importCommand(options: ImportOptions): Promise<ImportReport> {
  let size: number
  try {
    size = (await stat(options.file)).size
  } catch (error) {
    throw new ClientError(
      `cannot read ${options.file} (${(error as NodeJS.ErrnoException).code ?? 'error'})`,
    )
  }
  const startedAt = Date.now()
  const bar = progressBar(options.progress)
  bar?.start(size, 0, { current: basename(options.file) })
  let sent = 0
  const body = createReadStream(options.file).on('data', (chunk) => {
    sent += chunk.length
    bar?.update(sent)
  })
  try {
    const res = await send(
      options,
      `import?pin=${String(options.pin)}`,
      body,
      'application/x-tar',
      size,
    )
    const report = (await res.body.json()) as ImportReport
    bar?.stop()
    const seconds = (Date.now() - startedAt) / 1000
    if (options.json) options.write(`${JSON.stringify(report, null, 2)}\n`)
    else options.write(importSummary(options.file, report, seconds))
    return report
  } finally {
    bar?.stop()
    body.destroy()
  }
}

/** POSTs to the API; an answer other than 2xx is a ClientError with the server's message. */
async function send(
  options: ClientOptions,
  path: string,
  body: string | Readable,
  contentType: string,
  length?: number,
) {
  const headers: Record<string, string> = { 'content-type': contentType }
  if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`
  if (length !== undefined) headers['content-length'] = String(length)
  let res
  try {
    // A bundle takes as long as it takes: only a stall ends it.
    res = await request(apiUrl(options.url, path), {
      method: 'POST',
      headers,
      body,
      headersTimeout: 0,
      bodyTimeout: CLIENT_TIMEOUT_MS * 6,
    })
  } catch (error) {
    throw unreachable(options.url, error)
  }
  if (res.statusCode === 401) throw needsToken(options.url)
  if (res.statusCode < 200 || res.statusCode > 299) {
    const text = await res.body.text()
    const message = errorMessage(text) ?? text.slice(0, 300)
    throw new ClientError(`${path.split('?')[0] ?? path} refused (${res.statusCode}): ${message}`)
  }
  return res
}

function progressBar(stream: NodeJS.WriteStream): SingleBar | undefined {
  if (!stream.isTTY) return undefined
  return new SingleBar({
    stream,
    format: '[{bar}] {percentage}% | {value}/{total} bytes | {current}',
    hideCursor: true,
  })
}

function exportSummary(out: string, m: BundleManifest, bytes: number, seconds: number): string {
  const files = m.packages.reduce((n, p) => n + p.files.length, 0)
  const lines = [
    `Wrote ${out}: ${formatBytes(bytes)} in ${seconds.toFixed(1)} s, every entry checked against its digest`,
    `  ${count(m.images.length, 'image')}, ${count(m.packages.length, 'project')} (${count(files, 'file')}), ${count(m.entries.length, 'entry', 'entries')}`,
    ...m.images.map((i) => `  image   ${imageName(i)}  ${i.digest}`),
    ...m.packages.flatMap((p) =>
      p.files.map((f) => `  file    ${p.index}/${p.project}/${f.filename}`),
    ),
  ]
  return `${lines.join('\n')}\n`
}

function importSummary(file: string, r: ImportReport, seconds: number): string {
  const lines = [
    `Imported ${file} in ${seconds.toFixed(1)} s: ${count(r.images.length, 'image')}, ${count(r.projects.length, 'project')} (${count(r.files, 'file')})`,
    `  added ${r.added.count} blobs and files (${formatBytes(r.added.bytes)}), ${r.present.count} already stored (${formatBytes(r.present.bytes)})${r.pinned > 0 ? `, ${r.pinned} pinned` : ''}`,
    ...r.images.map((name) => `  image   ${name}`),
    ...r.projects.map((name) => `  project ${name}`),
  ]
  return `${lines.join('\n')}\n`
}

function count(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`
}

function shorten(name: string): string {
  return name.length <= MAX_SHOWN_NAME ? name : `…${name.slice(-(MAX_SHOWN_NAME - 1))}`
}
