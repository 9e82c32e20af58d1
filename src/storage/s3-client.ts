/**
 * The AWS SDK v3 client for storage.s3: AWS S3 or any S3-compatible service
 * (MinIO, Ceph RGW, Cloudflare R2) through `endpoint` and `pathStyle`.
 */
import { S3Client } from '@aws-sdk/client-s3'

/** Bound on opening a connection to the object store. */
export const S3_CONNECT_TIMEOUT_MS = 5_000
/** A request whose socket moves no byte for this long fails (the SDK's requestTimeout is per socket idle). */
export const S3_IDLE_TIMEOUT_MS = 60_000

export interface S3ClientSettings {
  readonly region: string
  readonly endpoint?: string | undefined
  readonly pathStyle: boolean
  /** Omitted: the SDK's standard chain (AWS_* env, shared config files, web identity, instance metadata). */
  readonly credentials?:
    | {
        readonly accessKeyId: string
        readonly secretAccessKey: string
        readonly sessionToken?: string | undefined
      }
    | undefined
}

export function createS3Client(settings: S3ClientSettings): S3Client {
  const { credentials } = settings
  return new S3Client({
    region: settings.region,
    ...(settings.endpoint !== undefined ? { endpoint: settings.endpoint } : {}),
    forcePathStyle: settings.pathStyle,
    ...(credentials
      ? {
          credentials: {
            accessKeyId: credentials.accessKeyId,
            secretAccessKey: credentials.secretAccessKey,
            ...(credentials.sessionToken !== undefined
              ? { sessionToken: credentials.sessionToken }
              : {}),
          },
        }
      : {}),
    // pullthrough checks SHA-256 itself on every write and read; the SDK's own
    // CRC checksums (on by default since 3.729) are refused by several
    // S3-compatible services, so they are sent only where an operation needs one.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    requestHandler: {
      connectionTimeout: S3_CONNECT_TIMEOUT_MS,
      requestTimeout: S3_IDLE_TIMEOUT_MS,
    },
  })
}
