/**
 * A model of rolling one image out to a large cluster through pullthrough
 * replicas (docs/scaling.md): how many bytes reach the upstream, how much each
 * replica sends, and how long it takes, with and without a node-level P2P
 * layer (Spegel and the like, with pullthrough as their upstream). Pure
 * arithmetic from its inputs, so the table in the doc can be checked and
 * redone for other numbers:
 *
 *   npm run model -- [--nodes 1000] [--image 5GB] [--replicas 3]
 *     [--replica-egress 1.25GB] [--node-ingress 1.25GB] [--upstream 125MB]
 *
 * Rates are per second. The model:
 * - The cache fills the image once per replica that misses it (fills are
 *   single-flighted within a replica, not yet across replicas: issue #15),
 *   or once when replicas share fills; at the upstream's rate, clients
 *   streaming it as it arrives.
 * - Without P2P every node downloads the image from a replica; the replicas
 *   share the nodes evenly, each bound by its egress, each node by its ingress.
 * - With P2P a node takes a layer from a peer that has it, else from the
 *   cache: the cache sends one copy per replica, then the holders double every
 *   round (each sends to one peer at the node rate), as in a swarm.
 */
import { parseArgs } from 'node:util'
import { parseSize } from '../src/config/units.ts'

const { values } = parseArgs({
  options: {
    nodes: { type: 'string', default: '1000' },
    image: { type: 'string', default: '5GB' },
    replicas: { type: 'string', default: '3' },
    'replica-egress': { type: 'string', default: '1.25GB' },
    'node-ingress': { type: 'string', default: '1.25GB' },
    upstream: { type: 'string', default: '125MB' },
  },
})

function size(name: string, text: string | undefined): number {
  const bytes = parseSize(text ?? '')
  if (bytes === undefined || bytes <= 0) throw new Error(`--${name} must be a size like 5GB`)
  return bytes
}

function count(name: string, text: string | undefined): number {
  const n = Number(text)
  if (!Number.isSafeInteger(n) || n < 1) throw new Error(`--${name} must be a positive integer`)
  return n
}

export interface Inputs {
  readonly nodes: number
  readonly imageBytes: number
  readonly replicas: number
  /** Bytes per second one replica can send (its NIC, or its CPU when lower). */
  readonly replicaEgress: number
  readonly nodeIngress: number
  readonly upstream: number
}

export interface Outcome {
  readonly scenario: string
  readonly upstreamBytes: number
  readonly perReplicaEgressBytes: number
  readonly seconds: number
}

export function model(inputs: Inputs): Outcome[] {
  const {
    nodes,
    imageBytes: s,
    replicas: r,
    replicaEgress: e,
    nodeIngress: d,
    upstream: u,
  } = inputs
  const fill = s / u
  // Clients stream a fill as it arrives: the rollout cannot end before the fill, nor go faster than delivery.
  const direct = Math.max(fill, (nodes * s) / (r * e), s / d)
  // P2P: R copies from the cache (one per replica, at the slower of its egress and a node's ingress),
  // then the holders double each round at the node rate until every node has it.
  const firstCopy = Math.max(fill, s / Math.min(e, d))
  const rounds = Math.ceil(Math.log2(nodes / Math.min(r, nodes)))
  const p2p = firstCopy + rounds * (s / d)
  return [
    {
      scenario: 'no P2P, each replica fills',
      upstreamBytes: r * s,
      perReplicaEgressBytes: (nodes * s) / r,
      seconds: direct,
    },
    {
      scenario: 'no P2P, fills shared by the replicas',
      upstreamBytes: s,
      perReplicaEgressBytes: (nodes * s) / r,
      seconds: direct,
    },
    {
      scenario: 'P2P (Spegel) in front, each replica fills',
      upstreamBytes: r * s,
      perReplicaEgressBytes: s,
      seconds: p2p,
    },
    {
      scenario: 'P2P (Spegel) in front, fills shared',
      upstreamBytes: s,
      perReplicaEgressBytes: s,
      seconds: p2p,
    },
  ]
}

const gb = (bytes: number) =>
  `${bytes < 1e10 ? Number((bytes / 1e9).toPrecision(3)) : (bytes / 1e9).toFixed(0)} GB`
const time = (s: number) => (s < 120 ? `${s.toFixed(0)} s` : `${(s / 60).toFixed(1)} min`)

if (process.argv[1] === new URL(import.meta.url).pathname) {
  const inputs: Inputs = {
    nodes: count('nodes', values.nodes),
    imageBytes: size('image', values.image),
    replicas: count('replicas', values.replicas),
    replicaEgress: size('replica-egress', values['replica-egress']),
    nodeIngress: size('node-ingress', values['node-ingress']),
    upstream: size('upstream', values.upstream),
  }
  process.stdout.write(
    `Inputs: ${inputs.nodes} nodes, a ${gb(inputs.imageBytes)} image, ${inputs.replicas} replicas sending ${gb(inputs.replicaEgress)}/s each, nodes receiving ${gb(inputs.nodeIngress)}/s, the upstream ${(inputs.upstream / 1e6).toFixed(0)} MB/s.\n\n`,
  )
  process.stdout.write(
    '| scenario | upstream bytes | egress per replica | rollout time |\n|---|---|---|---|\n',
  )
  for (const o of model(inputs))
    process.stdout.write(
      `| ${o.scenario} | ${gb(o.upstreamBytes)} | ${gb(o.perReplicaEgressBytes)} | ${time(o.seconds)} |\n`,
    )
}
