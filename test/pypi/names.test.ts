import t from 'tap'
import {
  MAX_FILENAME_LENGTH,
  MAX_PROJECT_NAME_LENGTH,
  distExtension,
  isDistFilename,
  isProjectName,
  normalizeProjectName,
  parseDistFilename,
} from '../../src/pypi/names.ts'

t.test('normalizes every spelling of a name to the PEP 503 form', async (t) => {
  // The spellings the packaging spec's name-normalization section lists as equivalent.
  const spellings = [
    'friendly-bard',
    'Friendly-Bard',
    'FRIENDLY-BARD',
    'friendly.bard',
    'friendly_bard',
    'friendly--bard',
    'FrIeNdLy-._.-bArD',
  ]
  for (const name of spellings) t.equal(normalizeProjectName(name), 'friendly-bard', name)
  t.equal(normalizeProjectName('Django'), 'django')
  t.equal(normalizeProjectName('zope.interface'), 'zope-interface')
  t.equal(normalizeProjectName('typing_extensions'), 'typing-extensions')
})

t.test('accepts PEP 508 project names and refuses everything else', async (t) => {
  for (const name of ['requests', 'Django', 'zope.interface', 'a', '9', 'typing_extensions', 'A-1'])
    t.ok(isProjectName(name), name)
  for (const name of [
    '',
    '-leading',
    'trailing-',
    '.hidden',
    '..',
    '../etc/passwd',
    'a/b',
    'a b',
    'naïve',
    'a%2Fb',
    'x'.repeat(MAX_PROJECT_NAME_LENGTH + 1),
  ])
    t.notOk(isProjectName(name), JSON.stringify(name))
  t.ok(isProjectName('x'.repeat(MAX_PROJECT_NAME_LENGTH)))
})

t.test('accepts wheel, sdist and egg filenames', async (t) => {
  for (const name of [
    'requests-2.32.3-py3-none-any.whl',
    'requests-2.32.3.tar.gz',
    'numpy-1.26.4-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl',
    'torch-2.3.1+cu121-cp311-cp311-linux_x86_64.whl',
    'python-dateutil-2.8.2.tar.gz',
    'Django-1.0.zip',
    'pytz-2013b.tar.bz2',
    'setuptools-0.6c11-py2.7.egg',
    'foo-1.0.tgz',
    'foo-1.0.tar.xz',
    'FOO-1.0.ZIP',
  ])
    t.ok(isDistFilename(name), name)
})

t.test('refuses filenames that are unsafe or not distributions', async (t) => {
  for (const name of [
    '',
    '.tar.gz',
    '.hidden-1.0.tar.gz',
    '../requests-2.32.3.tar.gz',
    'requests..2.tar.gz',
    'a/requests-2.32.3.tar.gz',
    'a\\requests-2.32.3.tar.gz',
    'requests-2.32.3.tar.gz\u0000.html',
    'requests\n-2.32.3.tar.gz',
    'requests 2.32.3.tar.gz',
    ' requests-2.32.3.tar.gz',
    'requests-2.32.3.exe',
    'requests-2.32.3.tar.gz.asc',
    'index.html',
    'requests-2.32.3-py3-none-any.whl.metadata',
    `${'x'.repeat(MAX_FILENAME_LENGTH)}.whl`,
  ])
    t.notOk(isDistFilename(name), JSON.stringify(name))
  t.equal(distExtension('a-1.TAR.GZ'), '.tar.gz')
  t.equal(distExtension('a-1.html'), undefined)
})

t.test('splits filenames into project and version', async (t) => {
  t.strictSame(parseDistFilename('requests-2.32.3-py3-none-any.whl'), {
    kind: 'wheel',
    project: 'requests',
    version: '2.32.3',
  })
  t.strictSame(
    parseDistFilename('typing_extensions-4.12.2-py3-none-any.whl', 'typing-extensions'),
    {
      kind: 'wheel',
      project: 'typing-extensions',
      version: '4.12.2',
    },
  )
  t.strictSame(parseDistFilename('setuptools-0.6c11-py2.7.egg'), {
    kind: 'egg',
    project: 'setuptools',
    version: '0.6c11',
  })
  t.strictSame(parseDistFilename('Django-5.0.tar.gz'), {
    kind: 'sdist',
    project: 'django',
    version: '5.0',
  })
  // A legacy sdist with '-' in its name: the known project decides where the version starts.
  t.strictSame(parseDistFilename('python-dateutil-2.8.2.tar.gz', 'python_dateutil'), {
    kind: 'sdist',
    project: 'python-dateutil',
    version: '2.8.2',
  })
  t.strictSame(parseDistFilename('python-dateutil-2.8.2.tar.gz'), {
    kind: 'sdist',
    project: 'python-dateutil',
    version: '2.8.2',
  })
  t.equal(parseDistFilename('requests-2.32.3.tar.gz', 'urllib3'), undefined, 'another project')
  t.equal(parseDistFilename('requests.tar.gz'), undefined, 'no version')
  t.equal(parseDistFilename('../requests-2.32.3.tar.gz'), undefined, 'not a safe filename')
})
