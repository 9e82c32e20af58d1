/**
 * How the PEP 658 pip test finds its pip: wherever one is installed, checked
 * by running it, and when there is none the skip reason names every place it
 * looked. Stand-in interpreters (shell scripts answering `-m pip --version`)
 * play the installed Pythons, so each search place is tested on its own
 * whatever this machine has.
 */
import { chmod, mkdir, symlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { tempDir } from '../helpers/config.ts'
import { findPep714Pip } from '../helpers/pypi-packages.ts'

/** Writes an executable `dir/name` that reports `pip <version>`, or fails when version is undefined. */
async function fakePython(dir: string, name: string, version: string | undefined): Promise<string> {
  await mkdir(dir, { recursive: true })
  const path = join(dir, name)
  const answer =
    version === undefined
      ? 'echo "No module named pip" >&2; exit 1'
      : `echo "pip ${version} from ${dir} (python 3)"; exit 0`
  await writeFile(
    path,
    `#!/bin/sh\nif [ "$1 $2 $3" = "-m pip --version" ]; then ${answer}; fi\nexit 2\n`,
  )
  await chmod(path, 0o755)
  return path
}

t.test('finds a new enough pip on the PATH, after asking the older ones before it', async (t) => {
  const root = await tempDir(t)
  const old = await fakePython(join(root, 'a'), 'python3', '23.0.1')
  const fresh = await fakePython(join(root, 'b'), 'python3.12', '24.0')
  // python3 -> python3.12 is the same interpreter: asked once.
  await symlink(fresh, join(root, 'b', 'python3'))
  const search = await findPep714Pip({
    path: `${join(root, 'a')}:${join(root, 'empty')}:${join(root, 'b')}`,
    pyenvRoot: join(root, 'no-pyenv'),
    system: [],
  })
  t.same(search.found, { python: fresh, pipVersion: '24.0' })
  t.same(search.searched, [`${old} (pip 23.0.1)`, `${fresh} (pip 24.0)`])
})

t.test(
  'finds one among pyenv versions, newest version first, without asking the shims',
  async (t) => {
    const root = await tempDir(t)
    const pyenv = join(root, 'pyenv')
    await fakePython(join(pyenv, 'versions', '3.9.18', 'bin'), 'python', '24.1')
    const newest = await fakePython(join(pyenv, 'versions', '3.13.0', 'bin'), 'python3', '25.0')
    await fakePython(join(pyenv, 'versions', '2.7.18', 'bin'), 'python', '20.3')
    // A shim dispatches to one of those versions; it is not asked itself.
    const shims = join(pyenv, 'shims')
    await fakePython(shims, 'python3', '99.0')
    const search = await findPep714Pip({ path: shims, pyenvRoot: pyenv, system: [] })
    t.same(search.found, { python: newest, pipVersion: '25.0' })
    t.same(search.searched, [
      `${shims} (pyenv's: its versions are asked directly)`,
      `${newest} (pip 25.0)`,
    ])
  },
)

t.test("asks Debian's python after the PATH and before pyenv", async (t) => {
  const root = await tempDir(t)
  const onPath = await fakePython(join(root, 'bin'), 'python', '22.0')
  const debian = await fakePython(join(root, 'usr-bin'), 'python3', '25.1')
  await fakePython(join(root, 'pyenv', 'versions', '3.13.0', 'bin'), 'python3', '24.2')
  const search = await findPep714Pip({
    path: join(root, 'bin'),
    pyenvRoot: join(root, 'pyenv'),
    system: [debian],
  })
  t.same(search.found, { python: debian, pipVersion: '25.1' })
  t.same(search.searched, [`${onPath} (pip 22.0)`, `${debian} (pip 25.1)`])
})

t.test('with no new enough pip, the search names every place it looked', async (t) => {
  const root = await tempDir(t)
  const old = await fakePython(join(root, 'bin'), 'python3', '23.2.1')
  const broken = await fakePython(join(root, 'bin'), 'python', undefined)
  const pyenv = join(root, 'missing-pyenv')
  const search = await findPep714Pip({ path: join(root, 'bin'), pyenvRoot: pyenv, system: [] })
  t.equal(search.found, undefined)
  t.same(search.searched, [
    `${old} (pip 23.2.1)`,
    `${broken} (no pip)`,
    `no pyenv versions under ${pyenv}`,
  ])
})

t.test('by default it searches $PATH, then $PYENV_ROOT or else ~/.pyenv', async (t) => {
  const root = await tempDir(t)
  const onPath = await fakePython(join(root, 'bin'), 'python3', '23.0.1')
  const pyenv = join(root, 'pyenv')
  const fresh = await fakePython(join(pyenv, 'versions', '3.12.1', 'bin'), 'python', '24.0')
  const path = join(root, 'bin')
  const rooted = await findPep714Pip({ env: { PATH: path, PYENV_ROOT: pyenv }, system: [] })
  t.same(rooted.found, { python: fresh, pipVersion: '24.0' })
  t.same(rooted.searched, [`${onPath} (pip 23.0.1)`, `${fresh} (pip 24.0)`])

  const home = join(root, 'home')
  const inHome = await fakePython(
    join(home, '.pyenv', 'versions', '3.13.0', 'bin'),
    'python3',
    '24.2',
  )
  const homed = await findPep714Pip({ env: { PATH: path, HOME: home }, system: [] })
  t.same(homed.found, { python: inHome, pipVersion: '24.2' })
})
