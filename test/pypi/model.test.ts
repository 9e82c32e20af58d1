import t from 'tap'
import { isProjectPage } from '../../src/pypi/model.ts'

const file = { filename: 'a-1.0.tar.gz', url: 'https://x/a-1.0.tar.gz', hashes: { sha256: 'ab' } }

t.test('recognizes project pages read back from the metadata store', async (t) => {
  t.ok(isProjectPage({ name: 'a', files: [] }))
  t.ok(isProjectPage({ name: 'a', files: [file], versions: ['1.0'], lastSerial: 3 }))
  t.ok(
    isProjectPage({
      name: 'a',
      files: [
        {
          ...file,
          requiresPython: '>=3.8',
          yanked: true,
          coreMetadata: { sha256: 'cd' },
          size: 1,
          uploadTime: '2024-01-01T00:00:00Z',
        },
        { ...file, filename: 'a-1.1.tar.gz', yanked: 'reason', coreMetadata: true },
      ],
    }),
  )
})

t.test('refuses values of another shape', async (t) => {
  const bad: unknown[] = [
    null,
    [],
    'page',
    { files: [] },
    { name: 'a' },
    { name: 'a', files: {} },
    { name: 'a', files: [], versions: [1] },
    { name: 'a', files: [], lastSerial: '3' },
    { name: 'a', files: [{ ...file, hashes: undefined }] },
    { name: 'a', files: [{ ...file, hashes: { sha256: 1 } }] },
    { name: 'a', files: [{ ...file, url: 1 }] },
    { name: 'a', files: [{ ...file, yanked: false }] },
    { name: 'a', files: [{ ...file, yanked: '' }] },
    { name: 'a', files: [{ ...file, coreMetadata: false }] },
    { name: 'a', files: [{ ...file, size: '1' }] },
  ]
  for (const value of bad) t.notOk(isProjectPage(value), JSON.stringify(value))
})
