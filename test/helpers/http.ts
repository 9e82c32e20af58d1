/** One HTTP request from a test, its body read whole (undici `request`). */
import { request, type Dispatcher } from 'undici'

export interface GetOptions {
  readonly headers?: Record<string, string>
  readonly method?: Dispatcher.HttpMethod
}

export interface Answer {
  readonly status: number
  readonly headers: Dispatcher.ResponseData['headers']
  readonly body: Buffer
  readonly text: string
  /** The body parsed as JSON (throws when it is not JSON). */
  json(): unknown
}

/** Rejects when the server cuts the body: a test that expects a whole answer fails there. */
export async function get(url: string, options: GetOptions = {}): Promise<Answer> {
  const res = await request(url, { method: options.method ?? 'GET', headers: options.headers })
  return answer(res, Buffer.from(await res.body.arrayBuffer()))
}

/** As get, but a body the server cut is an answer too: `cut`, with an empty body. */
export async function getOrCut(
  url: string,
  options: GetOptions = {},
): Promise<Answer & { readonly cut: boolean }> {
  const res = await request(url, { method: options.method ?? 'GET', headers: options.headers })
  try {
    return { ...answer(res, Buffer.from(await res.body.arrayBuffer())), cut: false }
  } catch {
    return { ...answer(res, Buffer.alloc(0)), cut: true }
  }
}

function answer(res: Dispatcher.ResponseData, body: Buffer): Answer {
  const text = body.toString()
  return {
    status: res.statusCode,
    headers: res.headers,
    body,
    text,
    json: () => JSON.parse(text) as unknown,
  }
}

/** The sample lines of a running server's /metrics whose name (and labels) start with `prefix`, as numbers summed. */
export async function metricSum(baseUrl: string, prefix: string): Promise<number> {
  const text = await (await request(`${baseUrl}/metrics`)).body.text()
  return text
    .split('\n')
    .filter((line) => line.startsWith(prefix))
    .reduce((sum, line) => sum + Number(line.slice(line.lastIndexOf(' ') + 1)), 0)
}
