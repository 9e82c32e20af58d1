/**
 * Bundles through the admin API (docs/api.md): `POST /-/api/v1/export` plans
 * the bundle from a JSON body and answers it as a tar stream; `POST
 * /-/api/v1/import` takes one as the request body (application/x-tar,
 * streamed, any size) and answers what it added. Both need admin.token; one
 * import runs at a time per replica. The tar code loads on the first use.
 */
import type { Readable } from 'node:stream'
import type { FastifyInstance } from 'fastify'
import { z } from 'zod'
import type { SyncListConfig } from '../../config/schema.ts'
import type { ImportDeps } from '../../bundle/import.ts'
import { planExport, type PlanDeps } from '../../bundle/plan.ts'
import type { Logger } from '../../observability/logger.ts'
import { adminConfigured, adminGuard, type AdminCheck } from './access.ts'
import { ApiBadQueryError, ApiConflictError, ApiForbiddenError } from './errors.ts'
import { API_PREFIX } from './routes.ts'

export const BUNDLE_MEDIA_TYPE = 'application/x-tar'
/** Names a request may list at most (images, packages, lists). */
const MAX_NAMED = 10_000

export interface BundleApiDeps {
  readonly token: string | undefined
  /** With auth on: who else is an admin (auth.admins). */
  readonly admins?: AdminCheck | undefined
  readonly plan: PlanDeps
  readonly import: Omit<ImportDeps, 'images' | 'projects'>
  readonly lists: readonly SyncListConfig[]
  readonly logger: Logger
  readonly now: () => number
}

const names = z.array(z.string().min(1).max(1024)).max(MAX_NAMED).default([])
const exportBody = z.strictObject({
  images: names,
  platforms: z
    .array(z.string().regex(/^[a-z0-9]+\/[a-z0-9_]+(?:\/[a-z0-9]+)?$/))
    .min(1)
    .optional(),
  packages: names,
  index: z.string().min(1).optional(),
  files: z.array(z.string().min(1)).min(1).optional(),
  syncLists: names,
  all: z.boolean().default(false),
})

export function registerBundleApi(app: FastifyInstance, deps: BundleApiDeps): void {
  const route = { config: { protocol: 'api' } }
  let importing = false
  void app.register(
    (api, _options, done) => {
      api.addHook('onRequest', adminGuard(deps.token, 'bearer', deps.admins))
      // The body is the bundle, read as it arrives: no size limit, nothing buffered.
      api.addContentTypeParser(BUNDLE_MEDIA_TYPE, (_request, payload, parsed) => {
        parsed(null, payload)
      })

      api.post('/export', route, async (request, reply) => {
        if (!adminConfigured(deps.token, deps.admins)) throw new ApiForbiddenError()
        const body = exportBody.safeParse(request.body ?? {})
        if (!body.success) {
          const issue = body.error.issues[0]
          throw new ApiBadQueryError(
            `${issue?.path.join('.') ?? 'body'}: ${issue?.message ?? 'invalid'}`,
          )
        }
        const syncLists = body.data.syncLists.map((name) => {
          const list = deps.lists.find((l) => l.name === name)
          if (!list) throw new ApiBadQueryError(`syncLists: no sync list is named "${name}"`)
          return list
        })
        const plan = await planExport(deps.plan, { ...body.data, syncLists })
        for (const warning of plan.warnings)
          request.log.warn({ warning }, 'export leaves something out')
        const { writeBundle } = await import('../../bundle/write.ts')
        const createdAt = new Date(deps.now())
        const stamp = createdAt.toISOString().replace(/[-:]/g, '').slice(0, 15)
        return reply
          .header('content-type', BUNDLE_MEDIA_TYPE)
          .header('content-disposition', `attachment; filename="pullthrough-${stamp}.tar"`)
          .send(writeBundle(plan, createdAt))
      })

      api.post('/import', route, async (request) => {
        if (!adminConfigured(deps.token, deps.admins)) throw new ApiForbiddenError()
        const query = z
          .strictObject({ pin: z.enum(['true', 'false']).default('false') })
          .safeParse(request.query)
        if (!query.success) throw new ApiBadQueryError('the only query parameter is pin=true|false')
        if (request.headers['content-type'] !== BUNDLE_MEDIA_TYPE)
          throw new ApiBadQueryError(
            `send the bundle as the body, content-type ${BUNDLE_MEDIA_TYPE}`,
          )
        if (importing) throw new ApiConflictError('an import is running on this replica')
        importing = true
        try {
          const { importBundle } = await import('../../bundle/import.ts')
          const report = await importBundle(
            { ...deps.import, images: deps.plan.images, projects: deps.plan.projects },
            request.body as Readable,
            { pin: query.data.pin === 'true' },
          )
          deps.logger.info(
            {
              report: { ...report, images: report.images.length, projects: report.projects.length },
            },
            'bundle imported',
          )
          return report
        } finally {
          importing = false
        }
      })
      done()
    },
    { prefix: API_PREFIX },
  )
}
