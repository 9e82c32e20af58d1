/**
 * The key that signs registry tokens: an EC P-256 private key (ES256) from
 * auth.signingKey, or one generated once and kept in the storage directory, so
 * tokens outlive a restart and replicas on one volume accept each other's.
 * A generated key is written to a temp file and linked into place, so two
 * replicas starting at once agree on one key.
 */
import {
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  randomUUID,
  type KeyObject,
} from 'node:crypto'
import { link, mkdir, readFile, rm, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { AuthFileError } from './errors.ts'

export interface SigningKey {
  readonly privateKey: KeyObject
  readonly publicKey: KeyObject
}

/** Where a generated key lives, under storage.path. */
export const GENERATED_KEY_PATH = join('auth', 'token-signing-key.pem')

/** Reads the configured key, or the generated one under `storagePath` (making it the first time). */
export async function loadSigningKey(
  configured: string | undefined,
  storagePath: string,
): Promise<SigningKey> {
  if (configured !== undefined)
    return parse(await read(configured, 'auth.signingKey'), 'auth.signingKey')
  const path = join(storagePath, GENERATED_KEY_PATH)
  const existing = await readFile(path, 'utf8').catch((error: unknown) => {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw new AuthFileError(`${GENERATED_KEY_PATH} under storage.path: cannot read it`, {
      cause: error,
    })
  })
  if (existing !== undefined) return parse(existing, GENERATED_KEY_PATH)
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }) as string
  await mkdir(dirname(path), { recursive: true, mode: 0o700 })
  const temp = `${path}.${randomUUID()}.tmp`
  await writeFile(temp, pem, { mode: 0o600 })
  try {
    await link(temp, path)
  } catch (error) {
    // Another replica linked its key first: use that one.
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
  } finally {
    await rm(temp, { force: true })
  }
  return parse(await readFile(path, 'utf8'), GENERATED_KEY_PATH)
}

async function read(path: string, key: string): Promise<string> {
  try {
    return await readFile(path, 'utf8')
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'error'
    throw new AuthFileError(`${key}: cannot read the file (${code})`, { cause: error })
  }
}

function parse(pem: string, key: string): SigningKey {
  let privateKey: KeyObject
  try {
    privateKey = createPrivateKey(pem)
  } catch (error) {
    throw new AuthFileError(`${key}: not a PEM private key`, { cause: error })
  }
  if (
    privateKey.asymmetricKeyType !== 'ec' ||
    privateKey.asymmetricKeyDetails?.namedCurve !== 'prime256v1'
  )
    throw new AuthFileError(
      `${key}: must be an EC P-256 key (openssl ecparam -name prime256v1 -genkey -noout)`,
    )
  return { privateKey, publicKey: createPublicKey(privateKey) }
}
