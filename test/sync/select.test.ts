/** Which tags and versions a sync list selects, and when its schedule runs it. */
import t from 'tap'
import { nextDue } from '../../src/sync/jobs.ts'
import {
  literalTags,
  parseRequirementLine,
  selectTags,
  selectVersions,
} from '../../src/sync/select.ts'
import { SyncPlanError } from '../../src/sync/errors.ts'
import { backoffDelay, withRetries } from '../../src/sync/backoff.ts'
import { UpstreamUnavailableError } from '../../src/upstream/errors.ts'

const TAGS = [
  'latest',
  '3.11',
  '3.12',
  'v3.12.1',
  '3.12-alpine',
  '3.13.0-rc1',
  '3.13',
  '2.7',
  'bookworm',
]

t.test('tags: literal names need no tag list; globs, ranges and latest N do', async (t) => {
  t.same(literalTags({ repository: 'python' }), ['latest'])
  t.same(literalTags({ repository: 'python', tags: ['3.12', '3.13'] }), ['3.12', '3.13'])
  t.equal(literalTags({ repository: 'python', tags: ['3.*'] }), undefined)
  t.equal(literalTags({ repository: 'python', latest: 2 }), undefined)
  t.equal(literalTags({ repository: 'python', semver: '>=3' }), undefined)
})

t.test('tags: globs, semver ranges and the newest N by version', async (t) => {
  t.same(selectTags({ repository: 'p', tags: ['3.12*'] }, TAGS), ['3.12', '3.12-alpine'])
  t.same(selectTags({ repository: 'p', tags: ['*-alpine', 'bookworm'] }, TAGS), [
    '3.12-alpine',
    'bookworm',
  ])
  // v3.12.1 counts as 3.12.1; without tags only plain versions count; 3.13.0-rc1 is a variant.
  t.same(selectTags({ repository: 'p', semver: '>=3.11 <4' }, TAGS), [
    '3.13',
    'v3.12.1',
    '3.12',
    '3.11',
  ])
  t.same(selectTags({ repository: 'p', latest: 2 }, TAGS), ['3.13', 'v3.12.1'])
  t.same(
    selectTags({ repository: 'p', tags: ['*-alpine'], semver: '>=3.12' }, TAGS),
    ['3.12-alpine'],
    'a variant keeps its version',
  )
  t.same(
    selectTags({ repository: 'p', tags: ['3.*'], semver: '<3.13', latest: 1 }, TAGS),
    ['3.12-alpine'],
    'the longer spelling of 3.12 first',
  )
  t.same(selectTags({ repository: 'p', tags: ['nope*'] }, TAGS), [])
})

t.test('versions: PEP 440 specifiers, newest N, yanked only when pinned', async (t) => {
  const listed = [
    { version: '1.0', yanked: false },
    { version: '1.0.0', yanked: false },
    { version: '1.1', yanked: false },
    { version: '2.0', yanked: true },
    { version: '2.1rc1', yanked: false },
    { version: 'not-a-version', yanked: false },
  ]
  t.same(selectVersions({}, listed), ['1.1'], 'the newest final, not yanked')
  t.same(
    selectVersions({ versions: '>=1.0,<3' }, listed),
    ['1.1', '1.0'],
    'one 1.0 for 1.0 and 1.0.0',
  )
  t.same(selectVersions({ versions: '>=1.0', latest: 1 }, listed), ['1.1'])
  t.same(selectVersions({ versions: '==2.0' }, listed), ['2.0'], 'a yanked version when pinned')
  t.same(selectVersions({ latest: 5 }, listed), ['1.1', '1.0'])
  t.same(selectVersions({ versions: '>=5' }, listed), [])
})

t.test(
  'requirement lines: names, specifiers, extras, markers; options and comments skipped',
  async (t) => {
    t.same(parseRequirementLine('requests'), { project: 'requests', versions: undefined })
    t.same(parseRequirementLine('Django >= 4.2, < 5  # LTS'), {
      project: 'Django',
      versions: '>=4.2,<5',
    })
    t.same(parseRequirementLine('uvicorn[standard]==0.30.1 ; python_version >= "3.8"'), {
      project: 'uvicorn',
      versions: '==0.30.1',
    })
    t.same(parseRequirementLine('six==1.16.0 --hash=sha256:abc'), {
      project: 'six',
      versions: '==1.16.0',
    })
    t.equal(parseRequirementLine('# comment'), undefined)
    t.equal(parseRequirementLine('-r other.txt'), undefined)
    t.equal(parseRequirementLine('   '), undefined)
    t.throws(() => parseRequirementLine('pkg @ https://example.com/pkg.whl'), SyncPlanError)
    t.throws(() => parseRequirementLine('pkg >>1'), { message: /not a PEP 440 specifier/ })
  },
)

t.test(
  'schedule: intervals after the last run, cron after the last run, at once when never run',
  async (t) => {
    const hour = 3_600_000
    const last = Date.UTC(2026, 0, 1, 10, 30)
    t.equal(
      nextDue({ schedule: { kind: 'interval', ms: 6 * hour } }, last, last + 1),
      last + 6 * hour,
    )
    t.equal(nextDue({ schedule: { kind: 'interval', ms: hour } }, undefined, 42), 42)
    t.equal(nextDue({ schedule: undefined }, last, last), null)
    const cron = nextDue({ schedule: { kind: 'cron', expression: '0 3 * * *' } }, last, last)
    t.equal(new Date(cron!).getHours(), 3, 'the next 03:00 (local time)')
    t.ok(cron! > last && cron! - last <= 24 * hour)
  },
)

t.test(
  'backoff: exponential with full jitter, capped; only passing failures are retried',
  async (t) => {
    const backoff = { attempts: 4, baseMs: 1000, capMs: 3000, random: () => 0.5 }
    t.same(
      [1, 2, 3, 4].map((n) => backoffDelay(backoff, n)),
      [500, 1000, 1500, 1500],
    )
    t.equal(backoffDelay({ ...backoff, random: () => 0 }, 3), 0, 'full jitter reaches 0')

    const waits: number[] = []
    let calls = 0
    const sleep = async (ms: number) => {
      waits.push(ms)
    }
    const value = await withRetries(
      { ...backoff, sleep },
      async () => {
        if (++calls < 3) throw new UpstreamUnavailableError('docker.io', [])
        return 'ok'
      },
      () => undefined,
    )
    t.equal(value, 'ok')
    t.same(waits, [500, 1000], 'two pauses before the third attempt succeeds')

    waits.length = 0
    calls = 0
    await t.rejects(
      withRetries(
        { ...backoff, sleep },
        async () => {
          calls++
          throw new SyncPlanError('bad line')
        },
        () => undefined,
      ),
      SyncPlanError,
    )
    t.equal(calls, 1, 'a bad requirement is not retried')
    t.same(waits, [])

    calls = 0
    await t.rejects(
      withRetries(
        { ...backoff, sleep },
        async () => {
          calls++
          throw new UpstreamUnavailableError('docker.io', [])
        },
        () => undefined,
      ),
      UpstreamUnavailableError,
    )
    t.equal(calls, 4, 'gives up after the attempts')
    t.same(waits, [500, 1000, 1500])
  },
)
