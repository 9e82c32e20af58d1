import t from 'tap'
import type { Logger } from 'pino'
import { createLogger } from '../../src/observability/logger.ts'
import type { FastifyBaseLogger } from 'fastify'
import { requestLogger } from '../../src/http/request-logger.ts'
import { startApp } from '../helpers/app.ts'
import { get } from '../helpers/http.ts'
import { LogCapture } from '../helpers/log-capture.ts'

/**
 * A logger at `level` whose child() calls are counted, as Fastify hands it
 * to the factory: Fastify's own child of the configured logger.
 */
function counted(level: string): { root: Logger; logs: LogCapture; children: () => number } {
  const logs = new LogCapture()
  const root = createLogger({ level, destination: logs })
  let children = 0
  const proto = Object.getPrototypeOf(root) as Logger
  // Children of root inherit this; each is made from the logger it is called on.
  root.child = function (this: Logger, ...args: Parameters<Logger['child']>) {
    children++
    return proto.child.apply(this, args)
  } as Logger['child']
  const fastifys = root.child({}, { serializers: {} })
  children = 0
  return { root: fastifys, logs, children: () => children }
}

t.test('a request logger is made on its first line at an enabled level', async (t) => {
  const { root, logs, children } = counted('info')
  const log = requestLogger(root, { reqId: 'req-1' }, {})
  log.debug('not at info')
  log.trace({ a: 1 }, 'nor this')
  t.equal(children(), 0, 'nothing written, nothing made')
  t.equal(log.level, 'info')
  log.info({ status: 200 }, 'request')
  log.warn('twice')
  t.equal(children(), 1, 'made once')
  t.match(logs.lines, [
    { reqId: 'req-1', status: 200, msg: 'request', level: 30 },
    { reqId: 'req-1', msg: 'twice', level: 40 },
  ])
  log.child({ part: 'x' }).error('from a child')
  t.match(logs.lines[2], { reqId: 'req-1', part: 'x', msg: 'from a child', level: 50 })
})

t.test('a level set on the route or later holds for the request logger', async (t) => {
  const { root, logs } = counted('info')
  const make = (...args: Parameters<typeof requestLogger>) => requestLogger(...args)
  make(root, { reqId: 'req-2' }, { level: 'debug' }).debug('route at debug')
  const later = make(root, { reqId: 'req-3' }, {})
  later.level = 'debug'
  later.debug('set to debug')
  const quiet = make(root, { reqId: 'req-4' }, { level: 'error' })
  quiet.warn('below the route level')
  t.same(
    logs.lines.map((l) => [l.reqId, l.msg]),
    [
      ['req-2', 'route at debug'],
      ['req-3', 'set to debug'],
    ],
  )
})

t.test('a parent that cannot say its levels gets its child at once', async (t) => {
  let children = 0
  const plain: FastifyBaseLogger = {
    level: 'info',
    fatal: () => undefined,
    error: () => undefined,
    warn: () => undefined,
    info: () => undefined,
    debug: () => undefined,
    trace: () => undefined,
    silent: () => undefined,
    child: () => {
      children++
      return plain
    },
  }
  const log = requestLogger(plain, { reqId: 'req-5' }, {})
  t.equal(children, 1, 'made at once')
  t.equal(log, plain)
})

t.test('the request line of a served request carries its request id', async (t) => {
  const app = await startApp(t, { yaml: '' })
  const res = await get(`${app.url}/healthz`, { headers: { 'user-agent': 'probe' } })
  t.equal(res.status, 200)
  const notFound = await get(`${app.url}/no-such-route`)
  t.equal(notFound.status, 404)
  const line = app.logs.lines.find((l) => l.msg === 'request' && l.url === '/no-such-route')
  t.match(line, { reqId: String, status: 404, level: 30 })
})
