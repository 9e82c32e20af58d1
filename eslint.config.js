// @ts-check
import js from '@eslint/js'
import tseslint from 'typescript-eslint'

/** The protocols, http and the engine under them (cache, storage, upstream): what sync/ and auth/ reach only through ports or not at all. */
const PROTOCOLS_AND_ENGINE = [
  '**/docker/**',
  '**/pypi/**',
  '**/cache/**',
  '**/storage/**',
  '**/upstream/**',
  '**/http/**',
]

/** Import rules that keep the layers of docs/architecture.md (patterns match the import string). */
const layer = {
  storage: { group: ['**/storage/**'], message: 'protocols ask cache/, never storage/' },
  upstream: {
    group: ['**/upstream/**'],
    message: "a protocol's only door to upstream/ is its remote.ts",
  },
  docker: { group: ['**/docker/**'], message: 'protocols never import each other' },
  pypi: { group: ['**/pypi/**'], message: 'protocols never import each other' },
  insight: {
    group: ['**/cache/**', '**/storage/**', '**/upstream/**', '**/http/**'],
    message: 'insight/ reads the metadata store and pull events only',
  },
  sync: {
    group: PROTOCOLS_AND_ENGINE,
    message: 'sync/ reaches the protocols through its ports (sync/ports.ts) only',
  },
  bundle: {
    group: ['**/docker/**', '**/pypi/**', '**/upstream/**', '**/http/**'],
    message: 'bundle/ reaches the protocols through its ports (bundle/ports.ts) only',
  },
  auth: {
    group: PROTOCOLS_AND_ENGINE,
    message: 'auth/ decides who may pull what from the config alone; the http layer applies it',
  },
  fastify: {
    group: ['fastify', 'fastify/**', '@fastify/**'],
    message: 'only http/ and the protocols know Fastify',
  },
}
/** @param {{ group: string[], message: string }[]} patterns */
const restrict = (patterns) => ({ 'no-restricted-imports': ['error', { patterns }] })

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'data/', 'helm/', 'coverage/', '.tap/', '.cache/'] },
  js.configs.recommended,
  ...tseslint.configs.strictTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
      'no-console': 'error',
      // Arrow shorthands like `() => resolve()` read fine; the rule adds braces for nothing.
      '@typescript-eslint/no-confusing-void-expression': 'off',
    },
  },
  { files: ['src/docker/**'], rules: restrict([layer.storage, layer.pypi, layer.upstream]) },
  { files: ['src/pypi/**'], rules: restrict([layer.storage, layer.docker, layer.upstream]) },
  { files: ['src/docker/remote.ts'], rules: restrict([layer.storage, layer.pypi]) },
  { files: ['src/pypi/remote.ts'], rules: restrict([layer.storage, layer.docker]) },
  {
    files: ['src/{storage,metadata,upstream,cache}/**'],
    rules: restrict([layer.fastify]),
  },
  {
    files: ['src/insight/**'],
    rules: restrict([layer.fastify, layer.insight, layer.docker, layer.pypi]),
  },
  { files: ['src/sync/**'], rules: restrict([layer.fastify, layer.sync]) },
  { files: ['src/bundle/**'], rules: restrict([layer.fastify, layer.bundle]) },
  { files: ['src/auth/**'], rules: restrict([layer.fastify, layer.auth]) },
  {
    // tap awaits the promise t.test() returns itself; async test bodies need no await;
    // tests index into fixtures they just built.
    files: ['test/**/*.ts'],
    rules: {
      '@typescript-eslint/no-floating-promises': 'off',
      '@typescript-eslint/require-await': 'off',
      '@typescript-eslint/no-non-null-assertion': 'off',
    },
  },
  {
    files: ['eslint.config.js'],
    extends: [tseslint.configs.disableTypeChecked],
  },
)
