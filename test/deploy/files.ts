/**
 * Readers for the deployment files (Dockerfile, compose.yaml, the Helm chart)
 * that the deploy tests hold against the code. Each test reads the files as a
 * user's tools would: YAML with the `yaml` package, the Dockerfile by its
 * instructions, the chart's values merged the way Helm merges them.
 */
import { readdir, readFile } from 'node:fs/promises'
import { join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parse } from 'yaml'

export const ROOT = fileURLToPath(new URL('../../', import.meta.url))
export const CHART = join(ROOT, 'helm', 'pullthrough')

export type Tree = Record<string, unknown>

export function isTree(value: unknown): value is Tree {
  return value !== null && typeof value === 'object' && !Array.isArray(value)
}

/** Parses a YAML file of this repository (path relative to the root). */
export async function readYaml(path: string): Promise<unknown> {
  return parse(await readFile(join(ROOT, path), 'utf8')) as unknown
}

export async function readTree(path: string): Promise<Tree> {
  const value = await readYaml(path)
  if (!isTree(value)) throw new Error(`${path}: expected a mapping at the top`)
  return value
}

/** The value at a dotted path (`service.port`), or undefined. */
export function at(tree: unknown, path: string): unknown {
  let node = tree
  for (const key of path.split('.')) {
    if (!isTree(node)) return undefined
    node = node[key]
  }
  return node
}

/** Whether every key of a dotted path exists (a key holding null counts). */
export function hasPath(tree: unknown, path: string): boolean {
  let node = tree
  for (const key of path.split('.')) {
    if (!isTree(node) || !(key in node)) return false
    node = node[key]
  }
  return true
}

/**
 * Helm's merge of user values over the chart's: mappings merge key by key, a
 * null removes the key, anything else (lists included) replaces.
 */
export function mergeValues(base: Tree, override: Tree): Tree {
  const removed = new Set(Object.keys(override).filter((key) => override[key] === null))
  const merged: Tree = Object.fromEntries(Object.entries(base).filter(([key]) => !removed.has(key)))
  for (const [key, value] of Object.entries(override)) {
    if (value === null) continue
    const current = merged[key]
    merged[key] = isTree(value) && isTree(current) ? mergeValues(current, value) : value
  }
  return merged
}

/** Dotted paths of every key in a tree; list items share one `[]` segment. */
export function keyPaths(node: unknown, prefix = '', into = new Set<string>()): Set<string> {
  if (Array.isArray(node)) {
    for (const item of node) keyPaths(item, `${prefix}[]`, into)
  } else if (isTree(node)) {
    for (const [key, child] of Object.entries(node)) {
      const path = prefix === '' ? key : `${prefix}.${key}`
      into.add(path)
      keyPaths(child, path, into)
    }
  }
  return into
}

export interface Instruction {
  /** Upper-case keyword: FROM, COPY, ENV, ... */
  readonly keyword: string
  readonly args: string
}

/** The Dockerfile's instructions, continuation lines joined, comments dropped. */
export async function readDockerfile(): Promise<Instruction[]> {
  const text = await readFile(join(ROOT, 'docker', 'Dockerfile'), 'utf8')
  const instructions: Instruction[] = []
  let pending = ''
  for (const raw of text.split('\n')) {
    const line = raw.trim()
    if (line.startsWith('#') || (line === '' && pending === '')) continue
    pending += pending === '' ? line : ` ${line}`
    if (pending.endsWith('\\')) {
      pending = pending.slice(0, -1).trimEnd()
      continue
    }
    const [keyword = '', ...rest] = pending.split(/\s+/)
    instructions.push({ keyword: keyword.toUpperCase(), args: rest.join(' ') })
    pending = ''
  }
  return instructions
}

/** The chart's templates by path relative to templates/ (partials and NOTES.txt included). */
export async function readTemplates(): Promise<Map<string, string>> {
  const dir = join(CHART, 'templates')
  const entries = await readdir(dir, { recursive: true, withFileTypes: true })
  const files = new Map<string, string>()
  for (const entry of entries) {
    if (!entry.isFile()) continue
    const path = join(entry.parentPath, entry.name)
    files.set(relative(dir, path), await readFile(path, 'utf8'))
  }
  return files
}
