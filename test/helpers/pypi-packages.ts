/**
 * Real Python distributions for the PyPI tests, built offline from generated
 * projects with Debian's python (`/usr/bin/python3`, see scripts/test-deps.sh):
 * wheels by `pip wheel --no-build-isolation --no-index` (build isolation would
 * download setuptools), sdists by setuptools' own PEP 517 hook. Next to them
 * sits one wheel this machine ships (Debian's python3-setuptools-whl) as a
 * distribution nobody here generated.
 *
 * The set covers what an index has to get right: a dependency (`app` requires
 * `lib>=1.0`), several versions of one project, a yanked version (PEP 592), a
 * version only a future Python may install (`Requires-Python: >=3.99`, PEP 345)
 * and a name that PEP 503 normalizes (`Fancy_Name.Pkg` -> `fancy-name-pkg`).
 * Each wheel has its core metadata beside it as `<filename>.metadata` (PEP 658).
 *
 * Building takes a couple of seconds, so it happens once per test process; the
 * files live in a temp dir removed when the process exits.
 */
import { spawn } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { mkdirSync, rmSync } from 'node:fs'
import {
  copyFile,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  realpath,
  rename,
  rm,
  writeFile,
} from 'node:fs/promises'
import { homedir, tmpdir } from 'node:os'
import { delimiter, join, sep } from 'node:path'
import type { Test } from 'tap'
import { tempDir } from './config.ts'

/** Debian's python: the one apt gives pip, setuptools and wheel (a PATH `python3` may be pyenv's). */
export const PYTHON = '/usr/bin/python3'
/** Where Debian keeps the wheels it ships (python3-pip-whl, python3-setuptools-whl). */
const SYSTEM_WHEELS_DIR = '/usr/share/python-wheels'
/** Bound on one build step (pip wheel of a tiny project takes under a second). */
const BUILD_TIMEOUT_MS = 60_000
/** Bound on one pip run in a test unless the caller gives another. */
const PIP_TIMEOUT_MS = 60_000
/** Output kept for error messages. */
const OUTPUT_TAIL_CHARS = 8192
/** The first file's upload time; each next file is one minute later. */
const FIRST_UPLOAD_MS = Date.UTC(2024, 0, 2, 3, 4, 5)
const MINUTE_MS = 60_000

/** The reason `lib 2.0` is yanked with; it holds every character HTML escaping must handle. */
export const YANKED_REASON = `broken build: <don't> use "2.0" & upgrade`

/** A PEP 658 core metadata file served as `<file URL>.metadata`. */
export interface PypiMetadataFile {
  readonly path: string
  /** Lowercase hex. */
  readonly sha256: string
  readonly size: number
}

/** One distribution file as an index lists it. */
export interface PypiFile {
  /** The project's name as published (not normalized). */
  readonly project: string
  readonly filename: string
  readonly kind: 'wheel' | 'sdist'
  /** Absolute path of the file on disk. */
  readonly path: string
  /** Lowercase hex. */
  readonly sha256: string
  readonly size: number
  readonly version: string
  /** The Requires-Python specifier, e.g. `>=3.99`; undefined when the project sets none. */
  readonly requiresPython: string | undefined
  /** The yank reason (PEP 592); `''` when yanked without one; undefined when not yanked. */
  readonly yanked: string | undefined
  /** PEP 700 `upload-time`, `yyyy-mm-ddThh:mm:ss.ffffffZ`. */
  readonly uploadTime: string
  /** The wheel's `*.dist-info/METADATA` (PEP 658); undefined for sdists. */
  readonly metadata: PypiMetadataFile | undefined
  /** False for the wheel this machine ships, true for those built here. */
  readonly generated: boolean
}

export interface PypiProject {
  /** As published, e.g. `Fancy_Name.Pkg`. */
  readonly name: string
  /** PEP 503, e.g. `fancy-name-pkg`. */
  readonly normalized: string
  /** Oldest version first; within a version the wheel before the sdist. */
  readonly files: readonly PypiFile[]
}

export interface PypiPackageSet {
  /** The directory holding every file and metadata file. */
  readonly dir: string
  readonly projects: readonly PypiProject[]
  /** The wheel Debian ships (`setuptools-*.whl`) when this machine has one. */
  readonly systemWheel: PypiFile | undefined
  /** The project with this name in any spelling; throws when there is none. */
  project(name: string): PypiProject
  /** The file with this filename; throws when there is none. */
  file(filename: string): PypiFile
}

interface VersionSpec {
  readonly version: string
  readonly dependencies?: readonly string[]
  readonly requiresPython?: string
  readonly yanked?: string
  /** Also build an sdist of this version. */
  readonly sdist?: boolean
}

interface ProjectSpec {
  readonly name: string
  /** The one importable module the project contains (a package when it has data). */
  readonly module: string
  readonly versions: readonly VersionSpec[]
  /** Ship a data file of this many random bytes in the package: a wheel of about this size. */
  readonly dataBytes?: number
}

/** What gets built. `pip install app` must pick lib 1.1: 2.0 is yanked, 3.0 needs Python 3.99. */
const PROJECTS: readonly ProjectSpec[] = [
  {
    name: 'lib',
    module: 'lib',
    versions: [
      { version: '1.0', sdist: true },
      { version: '1.1' },
      { version: '2.0', yanked: YANKED_REASON },
      { version: '3.0', requiresPython: '>=3.99' },
    ],
  },
  {
    name: 'app',
    module: 'app',
    versions: [{ version: '1.0', dependencies: ['lib>=1.0'], sdist: true }],
  },
  {
    name: 'Fancy_Name.Pkg',
    module: 'fancy_name_pkg',
    versions: [{ version: '0.1', sdist: true }],
  },
]

/** The project of bigPypiPackages(): one wheel of about 8 MB that does not compress. */
export const BIG_PROJECT = 'big'
const BIG_PROJECTS: readonly ProjectSpec[] = [
  { name: BIG_PROJECT, module: 'big', versions: [{ version: '1.0' }], dataBytes: 8_000_000 },
]
/** The data file inside the big project's package. */
const DATA_FILE = 'data.bin'

/** PEP 503 normalized name: lowercase, runs of `-`, `_` and `.` become one `-`. */
export function normalizeName(name: string): string {
  return name.replace(/[-_.]+/g, '-').toLowerCase()
}

function sha256Hex(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex')
}

/**
 * Environment for Debian's python and pip: nothing from this machine's PIP_*,
 * PYTHON* or proxy variables (this image sets PIP_FIND_LINKS, for one), no
 * config files, no cache, no user site-packages, no self version check.
 */
export function pythonEnv(home: string): NodeJS.ProcessEnv {
  return {
    PATH: '/usr/bin:/bin',
    HOME: home,
    TMPDIR: home,
    LANG: 'C.UTF-8',
    // pip reads no config file at all when this is os.devnull.
    PIP_CONFIG_FILE: '/dev/null',
    PIP_NO_CACHE_DIR: '1',
    PIP_DISABLE_PIP_VERSION_CHECK: '1',
    PYTHONNOUSERSITE: '1',
    PYTHONDONTWRITEBYTECODE: '1',
  }
}

export interface PythonRun {
  /** Exit code; null when the process died of a signal. */
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
  readonly durationMs: number
}

/** Runs `<python> <args>` (default `/usr/bin/python3`); resolves whatever the exit code, rejects on timeout. */
function runPython(
  args: readonly string[],
  options: { env: NodeJS.ProcessEnv; cwd?: string; timeoutMs: number; python?: string },
): Promise<PythonRun> {
  const started = performance.now()
  const child = spawn(options.python ?? PYTHON, args, {
    env: options.env,
    cwd: options.cwd,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stdout = ''
  let stderr = ''
  child.stdout.on(
    'data',
    (d: Buffer) => (stdout = (stdout + d.toString()).slice(-OUTPUT_TAIL_CHARS)),
  )
  child.stderr.on(
    'data',
    (d: Buffer) => (stderr = (stderr + d.toString()).slice(-OUTPUT_TAIL_CHARS)),
  )
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs)
    child.once('error', (error) => {
      clearTimeout(timer)
      reject(error)
    })
    child.once('close', (code, signal) => {
      clearTimeout(timer)
      const durationMs = Math.round(performance.now() - started)
      if (signal === 'SIGKILL' && durationMs >= options.timeoutMs) {
        const command = `${options.python ?? PYTHON} ${args.join(' ')}`
        reject(new Error(`${command} timed out after ${options.timeoutMs} ms: ${stderr}`))
        return
      }
      resolve({ code, stdout, stderr, durationMs })
    })
  })
}

/** As runPython, but a non-zero exit rejects with the output. */
async function mustRunPython(
  args: readonly string[],
  options: { env: NodeJS.ProcessEnv; cwd?: string },
): Promise<PythonRun> {
  const run = await runPython(args, { ...options, timeoutMs: BUILD_TIMEOUT_MS })
  if (run.code !== 0) {
    throw new Error(`${PYTHON} ${args.join(' ')} exited with ${String(run.code)}:
${run.stdout}${run.stderr}`)
  }
  return run
}

/**
 * Runs `/usr/bin/python3 -m pip <args>` in a clean environment (pythonEnv) with
 * HOME in a temp dir of this test; resolves with the exit code and output.
 */
export async function pip(
  t: Test,
  args: readonly string[],
  options: { timeoutMs?: number; python?: string; home?: string } = {},
): Promise<PythonRun> {
  // A given home: its ~/.netrc, for example, is read.
  const home = options.home ?? (await tempDir(t, 'pt-pip-'))
  return runPython(['-m', 'pip', ...args], {
    env: pythonEnv(home),
    cwd: home,
    timeoutMs: options.timeoutMs ?? PIP_TIMEOUT_MS,
    ...(options.python ? { python: options.python } : {}),
  })
}

/** pip reads PEP 714's `core-metadata` from JSON pages from version 24 on (Debian 12's is 23.0). */
const PEP714_PIP_MAJOR = 24
/** Interpreter names looked for in each PATH directory: `python`, `python3`, `python3.N`. */
const PYTHON_NAME_RE = /^python(?:3(?:\.\d+)?)?$/
/** Bound on one `python -m pip --version` (a cold start of an old pip takes about a second). */
const PIP_PROBE_TIMEOUT_MS = 30_000

/** Where findPep714Pip looks; each defaults to what `env` says. */
export interface PipSearchPlaces {
  /** Default `process.env`. */
  readonly env?: NodeJS.ProcessEnv
  /** A PATH-style list of directories; default `$PATH`. */
  readonly path?: string
  /** pyenv's root; default `$PYENV_ROOT`, else `$HOME/.pyenv`. */
  readonly pyenvRoot?: string
  /** Interpreters asked after those on the path; default Debian's `/usr/bin/python3`. */
  readonly system?: readonly string[]
}

export interface PipSearch {
  /** The first interpreter, in search order, whose pip is new enough; and that pip's version. */
  readonly found: { readonly python: string; readonly pipVersion: string } | undefined
  /** Every interpreter asked and what its pip said, then any place that held none. */
  readonly searched: readonly string[]
}

/** Orders version strings (`3.13.0`, `3.9.18`, `3.13`) newest first; non-numbers last. */
function newestFirst(a: string, b: string): number {
  const parts = (v: string) => (/^\d+(?:\.\d+)*/.exec(v)?.[0] ?? '').split('.').map(Number)
  const [x, y] = [parts(a), parts(b)]
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    const diff = (y[i] ?? -1) - (x[i] ?? -1)
    if (diff !== 0) return diff
  }
  return a.localeCompare(b)
}

/** `python3.N` (newest first), then `python3`, then `python` found in `dir`. */
async function pythonsIn(dir: string): Promise<string[]> {
  const names = (await readdir(dir).catch(() => [] as string[])).filter((n) =>
    PYTHON_NAME_RE.test(n),
  )
  const rank = (n: string) => (n === 'python' ? 2 : n === 'python3' ? 1 : 0)
  return names
    .sort(
      (a, b) =>
        rank(a) - rank(b) || newestFirst(a.slice('python'.length), b.slice('python'.length)),
    )
    .map((n) => join(dir, n))
}

/** One interpreter of each pyenv version (`<root>/versions/<v>/bin/python3.N`...), newest first. */
async function pyenvPythons(root: string): Promise<string[] | undefined> {
  const versions = await readdir(join(root, 'versions')).catch(() => undefined)
  if (versions === undefined) return undefined
  const pythons: string[] = []
  for (const version of versions.sort(newestFirst)) {
    const bin = join(root, 'versions', version, 'bin')
    const [python] = await pythonsIn(bin)
    if (python !== undefined) pythons.push(python)
  }
  return pythons
}

/**
 * Looks for a Python whose pip reads PEP 658 metadata from PEP 691 JSON pages
 * (PEP 714's `core-metadata`): each `python3.N`/`python3`/`python` on the PATH,
 * Debian's `/usr/bin/python3`, then every pyenv version, newest first. Each is
 * asked for its pip version by running it in the clean environment `pip()`
 * runs it in; the first new enough one wins.
 */
export async function findPep714Pip(places: PipSearchPlaces = {}): Promise<PipSearch> {
  const env = places.env ?? process.env
  const path = places.path ?? env.PATH ?? ''
  const pyenvRoot = places.pyenvRoot ?? env.PYENV_ROOT ?? join(env.HOME ?? homedir(), '.pyenv')
  const searched: string[] = []
  const candidates: string[] = []
  for (const dir of path.split(delimiter).filter((d) => d !== '')) {
    // pyenv's shims only dispatch to its versions (asked directly below) or to
    // the system python, and each costs a few pyenv processes to ask.
    if (dir === pyenvRoot || dir.startsWith(`${pyenvRoot}${sep}`)) {
      searched.push(`${dir} (pyenv's: its versions are asked directly)`)
      continue
    }
    candidates.push(...(await pythonsIn(dir)))
  }
  candidates.push(...(places.system ?? [PYTHON]))
  const pyenv = await pyenvPythons(pyenvRoot)
  candidates.push(...(pyenv ?? []))

  const seen = new Set<string>()
  const home = await mkdtemp(join(tmpdir(), 'pt-pip-probe-'))
  try {
    for (const python of candidates) {
      // /bin is /usr/bin on merged-/usr Debian, and python3 links to python3.N.
      const real = await realpath(python).catch(() => undefined)
      if (real === undefined || seen.has(real)) continue
      seen.add(real)
      const run = await runPython(['-m', 'pip', '--version'], {
        env: pythonEnv(home),
        cwd: home,
        timeoutMs: PIP_PROBE_TIMEOUT_MS,
        python,
      }).catch(() => undefined)
      const pipVersion = run?.code === 0 ? /^pip (\S+)/.exec(run.stdout)?.[1] : undefined
      searched.push(`${python} (${pipVersion === undefined ? 'no pip' : `pip ${pipVersion}`})`)
      if (pipVersion !== undefined && Number(pipVersion.split('.')[0]) >= PEP714_PIP_MAJOR) {
        return { found: { python, pipVersion }, searched }
      }
    }
  } finally {
    await rm(home, { recursive: true, force: true })
  }
  if (pyenv === undefined) searched.push(`no pyenv versions under ${pyenvRoot}`)
  return { found: undefined, searched }
}

function pyprojectToml(project: ProjectSpec, spec: VersionSpec): string {
  const lines = [
    '[build-system]',
    'requires = ["setuptools"]',
    'build-backend = "setuptools.build_meta"',
    '',
    '[project]',
    `name = ${JSON.stringify(project.name)}`,
    `version = ${JSON.stringify(spec.version)}`,
    `description = ${JSON.stringify(`pullthrough test fixture ${project.name}`)}`,
    `dependencies = ${JSON.stringify(spec.dependencies ?? [])}`,
  ]
  if (spec.requiresPython !== undefined) {
    lines.push(`requires-python = ${JSON.stringify(spec.requiresPython)}`)
  }
  lines.push('', '[tool.setuptools]')
  if (project.dataBytes === undefined) {
    lines.push(`py-modules = [${JSON.stringify(project.module)}]`, '')
  } else {
    lines.push(`packages = [${JSON.stringify(project.module)}]`, '')
    lines.push('[tool.setuptools.package-data]', `${project.module} = ["${DATA_FILE}"]`, '')
  }
  return lines.join('\n')
}

/** Writes the project's source tree to `dir`. */
async function writeProject(dir: string, project: ProjectSpec, spec: VersionSpec): Promise<void> {
  await mkdir(dir, { recursive: true })
  await writeFile(join(dir, 'pyproject.toml'), pyprojectToml(project, spec))
  const imports = (spec.dependencies ?? []).map((d) => `import ${/^[A-Za-z0-9_]+/.exec(d)?.[0]}\n`)
  const source = `${imports.join('')}NAME = ${JSON.stringify(project.name)}\nVERSION = ${JSON.stringify(spec.version)}\n`
  if (project.dataBytes === undefined) {
    await writeFile(join(dir, `${project.module}.py`), source)
    return
  }
  await mkdir(join(dir, project.module))
  await writeFile(join(dir, project.module, '__init__.py'), source)
  await writeFile(join(dir, project.module, DATA_FILE), randomBytes(project.dataBytes))
}

/** `<name>-<version>` of a wheel (`name-ver-tags.whl`) or sdist (`name-ver.tar.gz`) filename. */
function splitFilename(filename: string): { name: string; version: string } {
  const stem = filename.endsWith('.whl')
    ? filename.split('-').slice(0, 2).join('-')
    : filename.replace(/\.tar\.gz$/, '')
  const at = stem.lastIndexOf('-')
  return { name: stem.slice(0, at), version: stem.slice(at + 1) }
}

/** Extracts each wheel's `*.dist-info/METADATA` to `<wheel>.metadata`, in one python run. */
const EXTRACT_METADATA_PY = `
import re, sys, zipfile
for wheel in sys.argv[1:]:
    with zipfile.ZipFile(wheel) as z:
        names = [n for n in z.namelist() if re.fullmatch(r'[^/]+\\.dist-info/METADATA', n)]
        if len(names) != 1:
            sys.exit(f'{wheel}: expected one .dist-info/METADATA, found {names}')
        with open(wheel + '.metadata', 'wb') as out:
            out.write(z.read(names[0]))
`

/** Builds an sdist of each project dir into argv[1] with setuptools' PEP 517 hook. */
const BUILD_SDISTS_PY = `
import os, sys
from setuptools.build_meta import build_sdist
out = os.path.abspath(sys.argv[1])
for project in sys.argv[2:]:
    os.chdir(project)
    build_sdist(out)
`

/** The header fields of a core metadata file (RFC 822 style, up to the first blank line). */
function metadataFields(text: string): Map<string, string[]> {
  const fields = new Map<string, string[]>()
  for (const line of text.split(/\r?\n/)) {
    if (line === '') break
    const match = /^([A-Za-z0-9-]+):\s*(.*)$/.exec(line)
    if (!match) continue
    const key = match[1]!.toLowerCase()
    fields.set(key, [...(fields.get(key) ?? []), match[2]!])
  }
  return fields
}

interface Built {
  readonly filename: string
  readonly spec: VersionSpec | undefined
  readonly project: string
}

/** Builds every wheel (one pip per version rank: pip refuses two versions of a name at once). */
async function buildWheels(
  projects: readonly ProjectSpec[],
  root: string,
  env: NodeJS.ProcessEnv,
  out: string,
): Promise<void> {
  const ranks = Math.max(...projects.map((p) => p.versions.length))
  const runs: Promise<PythonRun>[] = []
  for (let rank = 0; rank < ranks; rank++) {
    const dirs: string[] = []
    for (const project of projects) {
      const spec = project.versions[rank]
      if (!spec) continue
      const dir = join(root, 'src', `${normalizeName(project.name)}-${spec.version}`)
      await writeProject(dir, project, spec)
      dirs.push(dir)
    }
    const wheelArgs = [
      '--no-deps',
      '--no-build-isolation',
      '--no-index',
      '--ignore-requires-python',
    ]
    runs.push(
      mustRunPython(['-m', 'pip', 'wheel', '-q', ...wheelArgs, '-w', out, ...dirs], { env }),
    )
  }
  await Promise.all(runs)
}

/** Builds the sdists from their own copies of the sources (builds write into the tree). */
async function buildSdists(
  projects: readonly ProjectSpec[],
  root: string,
  env: NodeJS.ProcessEnv,
  out: string,
): Promise<void> {
  const dirs: string[] = []
  for (const project of projects) {
    for (const spec of project.versions.filter((v) => v.sdist)) {
      const dir = join(root, 'sdist-src', `${normalizeName(project.name)}-${spec.version}`)
      await writeProject(dir, project, spec)
      dirs.push(dir)
    }
  }
  await mustRunPython(['-c', BUILD_SDISTS_PY, out, ...dirs], { env })
}

/** Copies Debian's setuptools wheel (any wheel there if that one is missing) into `out`. */
async function copySystemWheel(out: string): Promise<string | undefined> {
  const names = await readdir(SYSTEM_WHEELS_DIR).catch(() => [] as string[])
  const wheels = names.filter((n) => n.endsWith('.whl')).sort()
  const chosen = wheels.find((n) => n.startsWith('setuptools-')) ?? wheels[0]
  if (chosen === undefined) return undefined
  await copyFile(join(SYSTEM_WHEELS_DIR, chosen), join(out, chosen))
  return chosen
}

function specFor(projects: readonly ProjectSpec[], filename: string): Built {
  const { name, version } = splitFilename(filename)
  const project = projects.find((p) => normalizeName(p.name) === normalizeName(name))
  const spec = project?.versions.find((v) => v.version === version)
  if (!project || !spec) throw new Error(`built an unexpected file ${filename}`)
  return { filename, spec, project: project.name }
}

function uploadTime(index: number): string {
  // PEP 700 wants microseconds; Date has milliseconds.
  return new Date(FIRST_UPLOAD_MS + index * MINUTE_MS).toISOString().replace(/Z$/, '000Z')
}

async function describe(out: string, built: Built): Promise<Omit<PypiFile, 'uploadTime'>> {
  const path = join(out, built.filename)
  const bytes = await readFile(path)
  const kind = built.filename.endsWith('.whl') ? 'wheel' : 'sdist'
  let metadata: PypiMetadataFile | undefined
  let fields = new Map<string, string[]>()
  if (kind === 'wheel') {
    const metadataBytes = await readFile(`${path}.metadata`)
    fields = metadataFields(metadataBytes.toString('utf8'))
    metadata = {
      path: `${path}.metadata`,
      sha256: sha256Hex(metadataBytes),
      size: metadataBytes.length,
    }
  }
  const requiresPython = built.spec ? built.spec.requiresPython : fields.get('requires-python')?.[0]
  return {
    project: built.project,
    filename: built.filename,
    kind,
    path,
    sha256: sha256Hex(bytes),
    size: bytes.length,
    version:
      built.spec?.version ?? fields.get('version')?.[0] ?? splitFilename(built.filename).version,
    requiresPython,
    yanked: built.spec?.yanked,
    metadata,
    generated: built.spec !== undefined,
  }
}

function versionRank(projects: readonly ProjectSpec[], file: Omit<PypiFile, 'uploadTime'>): number {
  const project = projects.find((p) => p.name === file.project)
  return project?.versions.findIndex((v) => v.version === file.version) ?? 0
}

/** Builds `specs` (plus this machine's wheel when `withSystemWheel`) into a temp dir. */
async function build(
  specs: readonly ProjectSpec[],
  withSystemWheel: boolean,
): Promise<PypiPackageSet> {
  const root = await mkdtemp(join(tmpdir(), 'pt-pypi-packages-'))
  process.once('exit', () => rmSync(root, { recursive: true, force: true }))
  const home = join(root, 'home')
  const out = join(root, 'files')
  const wheelsOut = join(root, 'wheels')
  const sdistsOut = join(root, 'sdists')
  for (const dir of [home, out, wheelsOut, sdistsOut]) mkdirSync(dir)
  const env = pythonEnv(home)

  await Promise.all([
    buildWheels(specs, root, env, wheelsOut),
    buildSdists(specs, root, env, sdistsOut),
  ])
  const builtFiles: Built[] = []
  for (const from of [wheelsOut, sdistsOut]) {
    for (const filename of (await readdir(from)).sort()) {
      await rename(join(from, filename), join(out, filename))
      builtFiles.push(specFor(specs, filename))
    }
  }
  const systemWheel = withSystemWheel ? await copySystemWheel(out) : undefined
  const wheels = [...builtFiles.map((b) => b.filename), ...(systemWheel ? [systemWheel] : [])]
    .filter((f) => f.endsWith('.whl'))
    .map((f) => join(out, f))
  await mustRunPython(['-c', EXTRACT_METADATA_PY, ...wheels], { env })

  const generated = await Promise.all(builtFiles.map((b) => describe(out, b)))
  const groups = specs.map((p) => ({
    name: p.name,
    files: generated
      .filter((f) => f.project === p.name)
      .sort(
        (a, b) => versionRank(specs, a) - versionRank(specs, b) || (a.kind === 'wheel' ? -1 : 1),
      ),
  }))
  if (systemWheel !== undefined) {
    const meta = metadataFields(await readFile(join(out, `${systemWheel}.metadata`), 'utf8'))
    const name = meta.get('name')?.[0] ?? splitFilename(systemWheel).name
    const file = await describe(out, { filename: systemWheel, spec: undefined, project: name })
    groups.push({ name, files: [file] })
  }

  // Upload times follow the listing order: projects in turn, oldest version first.
  let uploads = 0
  const projects: PypiProject[] = groups.map((g) => ({
    name: g.name,
    normalized: normalizeName(g.name),
    files: g.files.map((f) => ({ ...f, uploadTime: uploadTime(uploads++) })),
  }))
  const all = projects.flatMap((p) => p.files)
  return {
    dir: out,
    projects,
    systemWheel: all.find((f) => !f.generated),
    project: (name) => {
      const found = projects.find((p) => p.normalized === normalizeName(name))
      if (!found) throw new Error(`no project ${name} in the PyPI fixtures`)
      return found
    },
    file: (filename) => {
      const found = all.find((f) => f.filename === filename)
      if (!found) throw new Error(`no file ${filename} in the PyPI fixtures`)
      return found
    },
  }
}

/** Built once per test process; later calls share the same files. */
let packages: Promise<PypiPackageSet> | undefined

/** The fixture distributions, built on first use in this process (a few seconds). */
export function pypiPackages(): Promise<PypiPackageSet> {
  packages ??= build(PROJECTS, true)
  return packages
}

let bigPackages: Promise<PypiPackageSet> | undefined

/** A set of one project, BIG_PROJECT, whose wheel is about 8 MB; built on first use in this process. */
export function bigPypiPackages(): Promise<PypiPackageSet> {
  bigPackages ??= build(BIG_PROJECTS, false)
  return bigPackages
}

/** `pip install --target <temp dir> packages` with pullthrough at `serverUrl` as its index. */
export async function pipInstallThrough(
  t: Test,
  serverUrl: string,
  packages: readonly string[],
): Promise<PythonRun> {
  const target = await tempDir(t, 'pt-site-')
  const host = new URL(serverUrl).host
  return pip(t, [
    'install',
    '--index-url',
    `${serverUrl}/simple/`,
    '--trusted-host',
    host,
    '--target',
    target,
    ...packages,
  ])
}
