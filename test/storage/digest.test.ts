import t from 'tap'
import { digestOf, parseDigest } from '../../src/storage/digest.ts'
import { InvalidDigestError } from '../../src/storage/errors.ts'

t.test('accepts a canonical sha256 digest', async (t) => {
  const d = digestOf('hello')
  t.equal(parseDigest(d), d)
  t.equal(d, 'sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824')
})

t.test('rejects other algorithms, uppercase hex and traversal shapes', async (t) => {
  for (const bad of [
    'sha512:' + 'a'.repeat(128),
    'sha256:' + 'A'.repeat(64),
    'sha256:../../../etc/passwd',
    'sha256:' + 'a'.repeat(63),
    'sha256:' + 'a'.repeat(64) + '/..',
    '',
  ]) {
    t.throws(() => parseDigest(bad), InvalidDigestError, bad)
  }
})
