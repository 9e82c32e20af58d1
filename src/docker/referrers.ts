/**
 * GET /v2/<name>/referrers/<digest> (OCI distribution-spec 1.1, "Listing
 * Referrers"): asked of the upstream, which computes the answer; its body must
 * parse as an OCI image index and is served re-serialized, never as the
 * upstream's bytes. A 404 tells the client the upstream lacks the API, and
 * clients then fall back to the referrers tag schema, so it is passed on as a
 * 404 too.
 */
import type { FastifyReply, FastifyRequest } from 'fastify'
import { OciError } from './errors.ts'
import { MEDIA_TYPES } from './media-types.ts'
import { parseReferrersIndex, renderReferrersIndex } from './referrers-index.ts'
import type { DockerTarget } from './target.ts'

/** OCI-Filters-Applied names filters (today only `artifactType`): a short list of words. */
const FILTERS_APPLIED_RE = /^[A-Za-z][A-Za-z0-9]{0,63}(?:\s*,\s*[A-Za-z][A-Za-z0-9]{0,63}){0,7}$/

export async function serveReferrers(
  target: DockerTarget,
  digest: string,
  request: FastifyRequest,
  reply: FastifyReply,
): Promise<FastifyReply> {
  const artifactType = (request.query as { artifactType?: unknown }).artifactType
  const upstream = await target.remote.referrers(
    digest,
    typeof artifactType === 'string' ? artifactType : undefined,
  )
  if (!upstream)
    throw new OciError('MANIFEST_UNKNOWN', undefined, {
      message: 'the upstream registry does not serve referrers for this digest',
    })
  const index = parseReferrersIndex(upstream.body)
  if (!index)
    throw new OciError(
      'MANIFEST_INVALID',
      { registry: target.registry.name },
      {
        status: 502,
        message: 'the upstream registry answered referrers with something other than an OCI index',
      },
    )
  const filtered = upstream.filtersApplied?.trim()
  if (filtered !== undefined && FILTERS_APPLIED_RE.test(filtered))
    reply.header('oci-filters-applied', filtered)
  return reply
    .header('content-type', MEDIA_TYPES.ociIndex)
    .send(Buffer.from(renderReferrersIndex(index)))
}
