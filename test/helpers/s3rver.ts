/**
 * A real S3-compatible server (s3rver, from npm) in a child process on a free
 * loopback port, its data in a temp dir, with one bucket; stopped (by its PID)
 * at the end of the test. The store under test talks to it with the AWS SDK
 * like to any other S3 service.
 */
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { createRequire } from 'node:module'
import { ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3'
import type { Test } from 'tap'
import { createS3Client } from '../../src/storage/s3-client.ts'
import { tempDir } from './config.ts'

/** How long s3rver may take to listen. */
const START_TIMEOUT_MS = 15_000

/** s3rver checks request signatures against this fixed key pair. */
export const S3RVER_KEY = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } as const

export interface S3rver {
  readonly endpoint: string
  readonly bucket: string
  /** A client of the bucket, for looking behind the store's back. */
  readonly client: S3Client
  /** Every key in the bucket under `prefix`, in order. */
  keys(prefix?: string): Promise<string[]>
  /** Writes `data` under `key` directly (to corrupt an object behind the store's back). */
  putRaw(key: string, data: Buffer): Promise<void>
}

export async function startS3rver(t: Test, bucket = 'pullthrough-test'): Promise<S3rver> {
  const dir = await tempDir(t, 'pt-s3rver-')
  const bin = createRequire(import.meta.url).resolve('s3rver/bin/s3rver.js')
  // Port 0: s3rver binds a free port and prints it.
  const child = spawn(
    process.execPath,
    [bin, '-d', dir, '-a', '127.0.0.1', '-p', '0', '--configure-bucket', bucket],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  )
  t.teardown(async () => {
    if (child.exitCode !== null || child.signalCode !== null) return
    child.kill('SIGKILL')
    await once(child, 'exit')
  })
  const port = await new Promise<number>((resolve, reject) => {
    let output = ''
    const timer = setTimeout(() => {
      reject(new Error(`s3rver did not start: ${output}`))
    }, START_TIMEOUT_MS)
    const onData = (data: Buffer) => {
      // It logs every request afterwards: keep reading so the pipe never fills.
      if (output.length > 10_000) return
      output += data.toString()
      const listening = /S3rver listening on 127\.0\.0\.1:(\d+)/.exec(output)
      if (listening?.[1]) {
        clearTimeout(timer)
        resolve(Number(listening[1]))
      }
    }
    child.stdout.on('data', onData)
    child.stderr.on('data', onData)
    child.once('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`s3rver exited with ${String(code)}: ${output}`))
    })
  })
  const endpoint = `http://127.0.0.1:${port}`
  const client = createS3Client({
    region: 'us-east-1',
    endpoint,
    pathStyle: true,
    credentials: S3RVER_KEY,
  })
  t.teardown(() => client.destroy())
  return {
    endpoint,
    bucket,
    client,
    keys: async (prefix = '') => {
      const keys: string[] = []
      let token: string | undefined
      do {
        const page = await client.send(
          new ListObjectsV2Command({
            Bucket: bucket,
            Prefix: prefix,
            ...(token !== undefined ? { ContinuationToken: token } : {}),
          }),
        )
        for (const object of page.Contents ?? []) if (object.Key) keys.push(object.Key)
        token = page.IsTruncated === true ? page.NextContinuationToken : undefined
      } while (token !== undefined)
      return keys
    },
    putRaw: async (key, data) => {
      await client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: data }))
    },
  }
}
