/**
 * docs/scaling.md shows the table `npm run model` prints with its default
 * inputs: the doc's numbers come from the committed model, not by hand.
 */
import { execFile } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import t from 'tap'
import { model } from '../../bench/rollout-model.ts'
import { ROOT } from './files.ts'

const run = promisify(execFile)

t.test("the scaling doc's rollout table is the model's output", async (t) => {
  const { stdout } = await run(
    process.execPath,
    ['--import', 'tsx', join(ROOT, 'bench', 'rollout-model.ts')],
    {
      cwd: ROOT,
    },
  )
  const doc = await readFile(join(ROOT, 'docs', 'scaling.md'), 'utf8')
  const rows = stdout
    .split('\n')
    .filter((line) => line.startsWith('| ') && !line.startsWith('| scenario'))
  t.equal(rows.length, 4)
  for (const row of rows) {
    // Prettier pads the doc's table cells; compare the cells.
    const cells = row.split('|').map((c) => c.trim())
    const found = doc.split('\n').some(
      (line) =>
        line
          .split('|')
          .map((c) => c.trim())
          .join('|') === cells.join('|'),
    )
    t.ok(found, `docs/scaling.md has: ${row}`)
  }
  t.ok(doc.includes(stdout.split('\n')[0] ?? 'no inputs line'), 'and the inputs line')
})

t.test(
  'the model: shared fills take the upstream once, P2P takes the load off the replicas',
  async (t) => {
    const [each, shared, p2p] = model({
      nodes: 100,
      imageBytes: 1e9,
      replicas: 2,
      replicaEgress: 1e9,
      nodeIngress: 1e9,
      upstream: 1e8,
    })
    t.equal(each?.upstreamBytes, 2e9)
    t.equal(shared?.upstreamBytes, 1e9)
    t.equal(each?.perReplicaEgressBytes, 5e10)
    t.equal(each?.seconds, 50, '100 GB through 2 GB/s')
    t.equal(p2p?.perReplicaEgressBytes, 1e9)
    // 10 s fill, then ceil(log2(50)) = 6 doublings of 1 s.
    t.equal(p2p?.seconds, 16)
  },
)
