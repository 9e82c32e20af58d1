/**
 * Push notifications from an upstream registry: CNCF Distribution's
 * `notifications` envelope and Harbor's `PUSH_ARTIFACT` webhook. A tag pushed
 * upstream is fetched again at once, so the next pull gets the new manifest
 * without waiting for `tagTTL` (event-driven sync for private registries).
 *
 *   POST /-/webhooks/distribution?registry=<name>   (default: the default registry)
 *   Authorization: Bearer <admin.token>
 *
 * Answers which tags were refreshed; a tag that cannot be fetched is listed
 * with its error and does not fail the others.
 *
 * Distribution sends the push event before it moves the tag (the manifest is
 * stored, then linked), so a refresh can still see the old digest. When the
 * event names the pushed digest, the tag is asked again, with backoff, until
 * it points there or TAG_LINK_WAIT_MS pass (then it was pushed again since).
 */
import type { FastifyInstance } from 'fastify'
import { setTimeout as sleep } from 'node:timers/promises'
import { z } from 'zod'
import type { ManifestCache, ManifestSource } from '../cache/manifests.ts'
import { adminConfigured, adminGuard, type AdminCheck } from '../http/api/access.ts'
import { ApiBadQueryError, ApiForbiddenError } from '../http/api/errors.ts'
import { manifestSource } from './manifests.ts'
import { isRepositoryName, isTag } from './names.ts'
import { DockerRemote, type RegistryPool } from './remote.ts'
import type { RegistryEntry } from './target.ts'

export const WEBHOOK_PATH = '/-/webhooks/distribution'
/** Tags refreshed per notification at most; registries batch a few events per envelope. */
export const MAX_WEBHOOK_TAGS = 100
/** Largest notification body accepted. */
const MAX_WEBHOOK_BYTES = 1024 * 1024
/**
 * How long a tag may lag behind its push event. Only a lagging tag waits; a
 * registry whose notification timeout is shorter posts again, which is harmless.
 */
export const TAG_LINK_WAIT_MS = 2000
/** First pause before asking a lagging tag again; doubled each time. */
const TAG_LINK_FIRST_PAUSE_MS = 50

export interface WebhookDeps {
  readonly token: string | undefined
  /** With auth on: who else is an admin (auth.admins). */
  readonly admins?: AdminCheck | undefined
  readonly registries: readonly RegistryEntry[]
  readonly pools: ReadonlyMap<string, RegistryPool>
  readonly manifests: Pick<ManifestCache, 'refresh'>
}

const distribution = z.object({
  events: z.array(
    z.object({
      action: z.string(),
      target: z
        .object({
          repository: z.string(),
          tag: z.string().optional(),
          digest: z.string().optional(),
        })
        .optional(),
    }),
  ),
})

const harbor = z.object({
  type: z.string(),
  event_data: z.object({
    repository: z.object({ repo_full_name: z.string() }),
    resources: z
      .array(z.object({ tag: z.string().optional(), digest: z.string().optional() }))
      .default([]),
  }),
})

interface Pushed {
  readonly repository: string
  readonly tag: string
  /** The manifest the push put under the tag, when the event says. */
  readonly digest?: string
}

/** The (repository, tag) pairs a notification says were pushed; undefined when it is neither format. */
export function pushedTags(body: unknown): Pushed[] | undefined {
  const d = distribution.safeParse(body)
  if (d.success)
    return d.data.events.flatMap((e) =>
      e.action === 'push' && e.target?.tag
        ? [{ repository: e.target.repository, tag: e.target.tag, digest: e.target.digest }]
        : [],
    )
  const h = harbor.safeParse(body)
  if (h.success) {
    if (h.data.type !== 'PUSH_ARTIFACT') return []
    const repository = h.data.event_data.repository.repo_full_name
    return h.data.event_data.resources.flatMap((r) =>
      r.tag ? [{ repository, tag: r.tag, digest: r.digest }] : [],
    )
  }
  return undefined
}

/** The media type of Distribution's notification envelopes. */
const EVENTS_MEDIA_TYPE = 'application/vnd.docker.distribution.events.v1+json'

export function registerDockerWebhook(app: FastifyInstance, deps: WebhookDeps): void {
  void app.register((scope, _options, done) => {
    // Distribution posts its own media type; read it as the JSON it is (in this route only).
    scope.addContentTypeParser(
      EVENTS_MEDIA_TYPE,
      { parseAs: 'string', bodyLimit: MAX_WEBHOOK_BYTES },
      scope.getDefaultJsonParser('error', 'error'),
    )
    registerRoute(scope, deps)
    done()
  })
}

function registerRoute(app: FastifyInstance, deps: WebhookDeps): void {
  const config = { protocol: 'api' }
  app.post(
    WEBHOOK_PATH,
    {
      config,
      bodyLimit: MAX_WEBHOOK_BYTES,
      onRequest: adminGuard(deps.token, 'bearer', deps.admins),
    },
    async (request) => {
      if (!adminConfigured(deps.token, deps.admins)) throw new ApiForbiddenError()
      const name = (request.query as { registry?: unknown }).registry
      const registry =
        typeof name === 'string'
          ? deps.registries.find((r) => r.name === name)
          : deps.registries.find((r) => r.default)
      const pool = registry && deps.pools.get(registry.name)
      if (!registry || !pool)
        throw new ApiBadQueryError(
          `registry: ${typeof name === 'string' ? `no configured registry is named ${name}` : 'no default registry; add ?registry=<name>'}`,
        )
      const pushed = pushedTags(request.body)
      if (pushed === undefined)
        throw new ApiBadQueryError(
          'the body is neither a Distribution notification nor a Harbor webhook',
        )
      const valid = pushed.filter((p) => isRepositoryName(p.repository) && isTag(p.tag))
      const refreshed: { repository: string; tag: string; digest?: string; error?: string }[] = []
      for (const { repository, tag, digest } of valid.slice(0, MAX_WEBHOOK_TAGS)) {
        try {
          const source = manifestSource({
            remote: new DockerRemote(pool, repository),
            registry,
            repository,
          })
          const served = await refreshUntil(deps.manifests, source, tag, digest)
          if (digest !== undefined && served !== digest)
            request.log.warn(
              { repository, tag, pushed: digest, upstream: served },
              'the tag points elsewhere than the push said; pushed again since?',
            )
          refreshed.push({ repository, tag, digest: served })
        } catch (error) {
          refreshed.push({ repository, tag, error: (error as Error).message })
        }
      }
      request.log.info(
        {
          registry: registry.name,
          refreshed: refreshed.length,
          ignored: pushed.length - refreshed.length,
        },
        'push notification',
      )
      return { registry: registry.name, refreshed, ignored: pushed.length - refreshed.length }
    },
  )
}

/**
 * Refreshes the tag; while it still points elsewhere than `pushed`, asks again
 * with doubling pauses for TAG_LINK_WAIT_MS. The digest the tag has at the end.
 */
async function refreshUntil(
  manifests: WebhookDeps['manifests'],
  source: ManifestSource,
  tag: string,
  pushed: string | undefined,
): Promise<string> {
  const deadline = Date.now() + TAG_LINK_WAIT_MS
  let pause = TAG_LINK_FIRST_PAUSE_MS
  for (;;) {
    const { digest } = await manifests.refresh(source, tag)
    if (pushed === undefined || digest === pushed || Date.now() + pause > deadline) return digest
    await sleep(pause)
    pause *= 2
  }
}
