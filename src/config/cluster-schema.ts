/**
 * `cluster`: replicas sharing Redis fetch each cold blob from upstream once.
 * The replica that starts a fill serves it to the others on an internal port,
 * which only replicas knowing the shared secret may use.
 */
import { z } from 'zod'
import { envName, oneSecretSource } from './fields.ts'

/** Shorter secrets are guessable by anyone who can reach the internal port. */
export const MIN_SECRET_CHARS = 32

const internalUrl = z.string().superRefine((value, ctx) => {
  let url: URL
  try {
    url = new URL(value)
  } catch {
    ctx.addIssue({ code: 'custom', message: 'must be an http(s) URL such as http://10.0.0.7:5001' })
    return
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    ctx.addIssue({ code: 'custom', message: 'must be an http(s) URL such as http://10.0.0.7:5001' })
  else if (url.username || url.password || url.search || url.hash || url.pathname !== '/')
    ctx.addIssue({ code: 'custom', message: 'must be only scheme, host and port' })
})

export const clusterSchema = z
  .strictObject({
    /** Port of the internal endpoint (never the client port). */
    port: z.number().int().min(1).max(65535),
    /** Address the internal endpoint listens on; default server.host. */
    host: z.string().min(1).optional(),
    /**
     * Where the other replicas reach this one's internal port (in Kubernetes:
     * the pod IP, from PULLTHROUGH_CLUSTER_ADVERTISE). Required; optional here
     * only so the chart's values schema accepts a config that leaves it to the
     * environment.
     */
    advertise: internalUrl.optional(),
    /** Shared by every replica; set exactly one of secret, secretFile, secretEnv. */
    secret: z.string().min(MIN_SECRET_CHARS).optional(),
    secretFile: z.string().min(1).optional(),
    secretEnv: envName.optional(),
  })
  .superRefine(oneSecretSource(['secret', 'secretFile', 'secretEnv'], true))
  .superRefine((cluster, ctx) => {
    if (cluster.advertise === undefined)
      ctx.addIssue({
        code: 'custom',
        path: ['advertise'],
        message: 'set it (or PULLTHROUGH_CLUSTER_ADVERTISE) to the URL the other replicas reach',
      })
  })
