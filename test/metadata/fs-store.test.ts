import { appendFile, readFile, readdir, rm, utimes, writeFile } from 'node:fs/promises'
import { setTimeout as sleep } from 'node:timers/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { hostname } from 'node:os'
import t from 'tap'
import { LOCK_STALE_MS } from '../../src/metadata/dir-lock.ts'
import { MetadataLockedError } from '../../src/metadata/errors.ts'
import { FsMetadataStore } from '../../src/metadata/fs-store.ts'
import { exitCode, spawnNode } from '../helpers/cli.ts'
import { tempDir } from '../helpers/config.ts'
import { runContract } from './contract.ts'

const WRITER = fileURLToPath(new URL('../helpers/fs-store-writer-child.ts', import.meta.url))

/** The digest the crash-test writer gives its blob `i`. */
const digestOf = (i: number) => `sha256:${i.toString(16).padStart(64, '0')}`

t.test('contract', async (t) => {
  runContract(t, async (t, options = {}) => {
    const store = await FsMetadataStore.open(join(await tempDir(t), 'meta'), options)
    t.teardown(() => store.close())
    return store
  })
})

t.test('data survives close and reopen', async (t) => {
  const dir = join(await tempDir(t), 'meta')
  const first = await FsMetadataStore.open(dir)
  await first.putTag('docker.io', 'library/busybox', 'latest', {
    digest: 'sha256:x',
    mediaType: 'm',
    size: 1,
    fetchedAt: 7,
  })
  await first.putBlob('sha256:a', 10, 100)
  await first.touchBlob('sha256:a', 200)
  await first.putDocument('pypi', 'requests', { fetchedAt: 9, page: { files: [] } })
  await first.setPinned('sha256:a', true)
  await first.setPinned('sha256:b', true)
  await first.setPinned('sha256:b', false)
  const token = {
    id: 'a'.repeat(12),
    hash: 'a'.repeat(64),
    user: 'ci',
    groups: [],
    description: '',
    createdAt: 1,
  }
  await first.putApiToken(token)
  await first.putApiToken({ ...token, id: 'b'.repeat(12), hash: 'b'.repeat(64) })
  await first.deleteApiToken('b'.repeat(64))
  await first.close()
  const second = await FsMetadataStore.open(dir)
  t.teardown(() => second.close())
  t.equal((await second.getTag('docker.io', 'library/busybox', 'latest'))?.digest, 'sha256:x')
  t.same(await second.getBlob('sha256:a'), {
    digest: 'sha256:a',
    size: 10,
    createdAt: 100,
    lastAccess: 200,
    hits: 1,
  })
  t.same((await second.getDocument('pypi', 'requests'))?.page, { files: [] })
  t.same(await second.pinned(), new Set(['sha256:a']), 'pins survive a reopen')
  await second.close()
  const third = await FsMetadataStore.open(dir)
  t.teardown(() => third.close())
  t.same(await third.pinned(), new Set(['sha256:a']), 'and another')
  t.same(await third.listApiTokens(), [token], 'API tokens survive reopens (journal and snapshot)')
})

// SIGKILL ends the process, not the machine: what the process wrote is in the
// page cache and survives. So this shows that acknowledged writes reach the
// kernel before the acknowledgement; it cannot show they reach the disk (they
// are fdatasync'ed every JOURNAL_SYNC_INTERVAL_MS, so a power cut may lose the
// last ones), which would take a machine or VM that loses power.
t.test(
  'a process killed with SIGKILL loses no write it acknowledged, and a torn line is tolerated',
  async (t) => {
    const dir = join(await tempDir(t), 'meta')
    const child = spawnNode(t, WRITER, [dir])
    let acknowledged = 0
    await new Promise<void>((resolve) => {
      child.stdout.on('data', (data: Buffer) => {
        const numbers = data.toString().trim().split('\n').map(Number)
        acknowledged = Math.max(acknowledged, ...numbers)
        if (acknowledged >= 300) resolve()
      })
    })
    child.kill('SIGKILL')
    await exitCode(child)
    // Simulate the crash cutting a line in half.
    await appendFile(join(dir, 'journal.jsonl'), '{"op":"touch","d":"sha256:tor')
    const store = await FsMetadataStore.open(dir)
    t.teardown(() => store.close())
    const { count, bytes } = await store.blobTotals()
    t.ok(count >= acknowledged, `${count} >= ${acknowledged} acknowledged writes`)
    // Blob i has size i: blobs 1..count and nothing else.
    t.equal(bytes, (count * (count + 1)) / 2, 'the writes kept are the first ones, in order')
    const records = await Promise.all(
      Array.from({ length: count }, (_, i) => store.getBlob(digestOf(i + 1))),
    )
    // The child acknowledges a blob once it is touched: only the last may lack its touch.
    const whole = records.slice(0, -1).every((r, i) => r?.size === i + 1 && r.hits === 1)
    t.ok(whole, 'each write is whole: every blob before the last was put and touched')
    await store.putBlob('sha256:after', 1, 1)
    t.equal((await store.getBlob('sha256:after'))?.size, 1, 'writes after recovery work')
  },
)

t.test('an unreadable line in the middle of the journal is skipped with a warning', async (t) => {
  const dir = join(await tempDir(t), 'meta')
  const store = await FsMetadataStore.open(dir)
  await store.putBlob('sha256:a', 1, 1)
  await store.close()
  await writeFile(
    join(dir, 'journal.jsonl'),
    '{"op":"touch","d":"sha256:a","now":2}\nnot json\n{"op":"touch","d":"sha256:a","now":3}\n',
  )
  const warnings: object[] = []
  const reopened = await FsMetadataStore.open(dir, {
    logger: { warn: (obj) => warnings.push(obj) },
  })
  t.teardown(() => reopened.close())
  t.same(await reopened.getBlob('sha256:a'), {
    digest: 'sha256:a',
    size: 1,
    createdAt: 1,
    lastAccess: 3,
    hits: 2,
  })
  t.equal(warnings.length, 1)
})

t.test('a store written by a version that kept counters opens with its records', async (t) => {
  const dir = join(await tempDir(t), 'meta')
  await (await FsMetadataStore.open(dir)).close()
  const blob = { digest: 'sha256:a', size: 1, createdAt: 1, lastAccess: 1, hits: 0 }
  await writeFile(
    join(dir, 'snapshot.json'),
    JSON.stringify({ version: 1, tags: [], blobs: [blob], counters: { pulls: 3 } }),
  )
  await writeFile(
    join(dir, 'journal.jsonl'),
    '{"op":"count","n":"pulls","by":1}\n{"op":"touch","d":"sha256:a","now":2}\n',
  )
  const warnings: object[] = []
  const store = await FsMetadataStore.open(dir, { logger: { warn: (obj) => warnings.push(obj) } })
  t.teardown(() => store.close())
  t.same(await store.getBlob('sha256:a'), { ...blob, lastAccess: 2, hits: 1 })
  t.same(warnings, [])
})

t.test('compaction keeps everything and empties the journal', async (t) => {
  const dir = join(await tempDir(t), 'meta')
  const store = await FsMetadataStore.open(dir)
  await store.putBlob('sha256:a', 1, 1)
  for (let i = 0; i < 12_000; i++) await store.touchBlob('sha256:a', i + 2)
  const journal = await readFile(join(dir, 'journal.jsonl'), 'utf8')
  t.ok(
    journal.split('\n').length < 12_000,
    `journal compacted (${journal.split('\n').length} lines)`,
  )
  await store.close()
  const reopened = await FsMetadataStore.open(dir)
  t.teardown(() => reopened.close())
  t.same(await reopened.getBlob('sha256:a'), {
    digest: 'sha256:a',
    size: 1,
    createdAt: 1,
    lastAccess: 12_001,
    hits: 12_000,
  })
})

t.test('the lock refuses a second live user and takes over from a dead one', async (t) => {
  const dir = join(await tempDir(t), 'meta')
  const store = await FsMetadataStore.open(dir)
  await t.rejects(FsMetadataStore.open(dir), MetadataLockedError)
  await store.close()
  // A lock left by a process that no longer exists (the old format: a bare PID).
  await writeFile(join(dir, 'lock'), '2147483646')
  const taken = await FsMetadataStore.open(dir)
  t.same(JSON.parse(await readFile(join(dir, 'lock'), 'utf8')), {
    pid: process.pid,
    host: hostname(),
  })
  await taken.close()
})

t.test(
  'a lock naming our own PID is a previous incarnation (a container restarted as PID 1)',
  async (t) => {
    const dir = join(await tempDir(t), 'meta')
    const first = await FsMetadataStore.open(dir)
    await first.close()
    await writeFile(join(dir, 'lock'), JSON.stringify({ pid: process.pid, host: hostname() }))
    const store = await FsMetadataStore.open(dir)
    t.teardown(() => store.close())
    t.pass('taken over')
  },
)

t.test(
  'a lock from another host is refused while it is fresh, taken over once abandoned',
  async (t) => {
    const dir = join(await tempDir(t), 'meta')
    const first = await FsMetadataStore.open(dir)
    await first.close()
    const lock = join(dir, 'lock')
    await writeFile(lock, JSON.stringify({ pid: 1, host: 'other-pod-7f9c' }))
    await t.rejects(FsMetadataStore.open(dir), {
      code: 'PT_METADATA_LOCKED',
      host: 'other-pod-7f9c',
    })
    const old = new Date(Date.now() - LOCK_STALE_MS - 1000)
    await utimes(lock, old, old)
    const store = await FsMetadataStore.open(dir)
    t.teardown(() => store.close())
    t.pass('an untouched lock is abandoned')
  },
)

t.test(
  'a tag read before a restart keeps its last use, so it is not collected early',
  async (t) => {
    const retention = 2000
    const dir = join(await tempDir(t), 'meta')
    const first = await FsMetadataStore.open(dir, { recordRetentionMs: retention })
    const record = { digest: 'sha256:x', mediaType: 'm', size: 1, fetchedAt: 1 }
    await first.putTag('docker.io', 'library/read', 'latest', record)
    await first.putTag('docker.io', 'library/unread', 'latest', record)
    await sleep(retention * 0.6)
    t.ok(await first.getTag('docker.io', 'library/read', 'latest'))
    await first.close()
    const second = await FsMetadataStore.open(dir, { recordRetentionMs: retention })
    t.teardown(() => second.close())
    await sleep(retention * 0.6)
    t.equal(await second.collectUnused(), 1)
    t.ok(await second.getTag('docker.io', 'library/read', 'latest'), 'the read one stays')
    t.equal(await second.getTag('docker.io', 'library/unread', 'latest'), undefined)
  },
)

t.test('unused pages and temp files are swept on a timer, without a call', async (t) => {
  const dir = join(await tempDir(t), 'meta')
  const store = await FsMetadataStore.open(dir, { recordRetentionMs: 200, sweepIntervalMs: 100 })
  t.teardown(() => store.close())
  await store.putDocument('pypi', 'old', { fetchedAt: 1, page: {} })
  await writeFile(join(dir, 'pages', 'left-by-a-crash.json.1.x.tmp'), '{')
  const deadline = Date.now() + 10_000
  while (Date.now() < deadline && (await readdir(join(dir, 'pages'))).length > 0) await sleep(50)
  t.same(await readdir(join(dir, 'pages')), [], 'pages/ is empty')
})

t.test('store failures are reported with the operation that failed', async (t) => {
  const dir = join(await tempDir(t), 'meta')
  const failed: string[] = []
  const store = await FsMetadataStore.open(dir, { onError: (op) => failed.push(op) })
  t.teardown(() => store.close())
  await store.putDocument('pypi', 'one', { fetchedAt: 1, page: {} })
  // Root ignores permissions: a file where the directory was fails for everyone.
  await rm(join(dir, 'pages'), { recursive: true })
  await writeFile(join(dir, 'pages'), 'not a directory')
  await t.rejects(store.putDocument('pypi', 'two', { fetchedAt: 1, page: {} }), {
    code: 'PT_METADATA_UNAVAILABLE',
  })
  await t.rejects(store.getDocument('pypi', 'one'), { code: 'PT_METADATA_UNAVAILABLE' })
  await t.rejects(store.collectUnused(), { code: 'PT_METADATA_UNAVAILABLE' })
  t.same(failed, ['putDocument', 'getDocument', 'collectUnused'])
})
