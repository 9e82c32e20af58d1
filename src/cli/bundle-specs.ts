/**
 * `pullthrough export` and `pullthrough import`: carrying the cache to a site
 * with no network. Their code (tar, progress bars) loads when they run.
 */
import { readFile } from 'node:fs/promises'
import { asClient, SERVER_OPTIONS, serverOptions, text } from './client-commands.ts'
import { EXIT_OK, UsageError, type CommandSpec, type OptionValues } from './command.ts'

const JSON_OPTION = {
  json: { type: 'boolean', help: 'Print the result as JSON instead of a summary' },
} as const

function list(values: OptionValues, name: string): string[] {
  const value = values[name]
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : []
}

export const exportSpec: CommandSpec = {
  name: 'export',
  summary: 'Write images and packages to a bundle file for an air-gapped site',
  description:
    'Asks a running server for a bundle of the named images (each tag revalidated, what the cache lacks fetched and verified), packages (the newest version each requirement allows, all its files unless --files), sync lists, or everything it holds (--all), and writes it to --out: one tar file holding an OCI image layout (skopeo copy oci-archive:FILE:NAME) and a PEP 503 tree per index (pip --index-url file://…/pypi/INDEX/simple/), with pullthrough-bundle.json and SHA256SUMS. Every entry is checked against its digest as it arrives; the file appears only when whole. Needs admin.token.',
  options: {
    images: {
      type: 'string',
      multiple: true,
      value: 'REF',
      help: 'An image by repository and tag, like library/python:3.12 (repeatable)',
    },
    platform: {
      type: 'string',
      multiple: true,
      value: 'OS/ARCH',
      help: 'Only these platforms of multi-arch images (repeatable; default all)',
    },
    requirements: {
      type: 'string',
      multiple: true,
      value: 'FILE',
      help: 'A pip requirements file: the newest version each line allows (repeatable)',
    },
    package: {
      type: 'string',
      multiple: true,
      value: 'SPEC',
      help: 'A requirement like requests==2.32.3 (repeatable)',
    },
    index: {
      type: 'string',
      value: 'NAME',
      help: 'The index packages come from (default: the default index)',
    },
    files: {
      type: 'string',
      multiple: true,
      value: 'GLOB',
      help: 'Only package files matching, like *manylinux*x86_64.whl (repeatable)',
    },
    'sync-list': {
      type: 'string',
      multiple: true,
      value: 'NAME',
      help: "A sync list's selection (repeatable)",
    },
    all: { type: 'boolean', help: 'Everything the cache holds (no upstream is asked)' },
    out: {
      type: 'string',
      short: 'o',
      value: 'FILE',
      help: 'Where to write the bundle (required)',
    },
    ...SERVER_OPTIONS,
    ...JSON_OPTION,
  },
  examples: [
    'pullthrough export --images library/python:3.12 --requirements requirements.txt --out bundle.tar',
    'pullthrough export --sync-list base --platform linux/amd64 --out base.tar',
    'pullthrough export --all --out everything.tar',
  ],
  async run({ values, args }) {
    if (args.length > 0) throw new UsageError(`unexpected argument "${args[0] ?? ''}"`)
    const out = text(values, 'out')
    if (out === undefined) throw new UsageError('export needs --out FILE')
    const packages = list(values, 'package')
    for (const file of list(values, 'requirements')) {
      try {
        packages.push(...(await readFile(file, 'utf8')).split('\n'))
      } catch (error) {
        throw new UsageError(
          `cannot read ${file} (${(error as NodeJS.ErrnoException).code ?? 'error'})`,
        )
      }
    }
    const platforms = list(values, 'platform')
    const files = list(values, 'files')
    const index = text(values, 'index')
    const request = {
      images: list(values, 'images'),
      packages: packages.filter((line) => line.replace(/#.*$/, '').trim() !== ''),
      syncLists: list(values, 'sync-list'),
      all: values.all === true,
      ...(platforms.length > 0 ? { platforms } : {}),
      ...(files.length > 0 ? { files } : {}),
      ...(index === undefined ? {} : { index }),
    }
    if (
      request.images.length + request.packages.length + request.syncLists.length === 0 &&
      !request.all
    )
      throw new UsageError('export needs --images, --package, --requirements, --sync-list or --all')
    const options = await serverOptions(values)
    return asClient(async () => {
      const { exportCommand } = await import('../client/bundle-commands.ts')
      await exportCommand({ ...options, request, out, progress: process.stderr })
      return EXIT_OK
    })
  },
}

export const importSpec: CommandSpec = {
  name: 'import',
  args: 'FILE',
  summary: 'Load a bundle file into the cache',
  description:
    'Sends a bundle made by pullthrough export to a running server, which checks every entry against its digest while staging it and, only once the whole bundle checked out, stores the blobs and files and records the tags and pages, then says what it added. A bundle that is cut short or corrupt, or names a registry or index the server does not configure, is refused with the reason and changes nothing (exit 1). Needs admin.token.',
  options: {
    pin: {
      type: 'boolean',
      help: 'Pin what the bundle holds: eviction and retention never delete it',
    },
    ...SERVER_OPTIONS,
    ...JSON_OPTION,
  },
  examples: [
    'pullthrough import bundle.tar',
    'pullthrough import --pin --url http://cache.airgap:5000 bundle.tar',
  ],
  async run({ values, args }) {
    const [file, extra] = args
    if (file === undefined) throw new UsageError('import needs the bundle FILE')
    if (extra !== undefined) throw new UsageError(`unexpected argument "${extra}"`)
    const options = await serverOptions(values)
    return asClient(async () => {
      const { importCommand } = await import('../client/bundle-commands.ts')
      await importCommand({ ...options, file, pin: values.pin === true, progress: process.stderr })
      return EXIT_OK
    })
  },
}
