/**
 * GET /v2/<name>/referrers/<digest> (OCI distribution-spec 1.1, "Listing
 * Referrers"): passed through from the upstream, which computes the answer.
 * A 404 tells the client the upstream lacks the API, and clients then fall
 * back to the referrers tag schema, so it is passed on as a 404 too.
 */
import type { FastifyReply, FastifyRequest } from 'fastify'
import { fetchDocument, headerValue } from '../cache/documents.ts'
import { FillFailedError } from '../cache/errors.ts'
import { OciError } from './errors.ts'
import { MEDIA_TYPES } from './media-types.ts'
import type { DockerTarget } from './target.ts'

/** Bytes of a referrers index accepted from an upstream. */
const MAX_REFERRERS_BYTES = 4 * 1024 * 1024

export async function serveReferrers(
  target: DockerTarget,
  digest: string,
  request: FastifyRequest,
  reply: FastifyReply,
): Promise<FastifyReply> {
  const artifactType = (request.query as { artifactType?: unknown }).artifactType
  const query =
    typeof artifactType === 'string' ? `?artifactType=${encodeURIComponent(artifactType)}` : ''
  const doc = await fetchDocument(
    {
      pool: target.pool,
      path: `v2/${target.repository}/referrers/${digest}${query}`,
      authScope: target.authScope,
      headers: { accept: MEDIA_TYPES.ociIndex },
    },
    { maxBytes: MAX_REFERRERS_BYTES },
  )
  if (doc.status === 404)
    throw new OciError('MANIFEST_UNKNOWN', undefined, {
      message: 'the upstream registry does not serve referrers for this digest',
    })
  if (doc.status !== 200) throw new FillFailedError(digest, `upstream answered ${doc.status}`)
  const filtered = headerValue(doc.headers, 'oci-filters-applied')
  if (filtered !== undefined) reply.header('oci-filters-applied', filtered)
  return reply.header('content-type', MEDIA_TYPES.ociIndex).send(doc.body)
}
