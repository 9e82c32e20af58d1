/**
 * Address classes for the redirect and realm policy: a redirect or token realm
 * may reach a public address, or an address of a class the upstream itself is
 * on (a registry on 10.0.0.5 may send us to 10.0.0.6, never to 127.0.0.1 or
 * 169.254.169.254). Classes follow the IANA special-purpose registries
 * (RFC 6890 and its updates); IPv4-mapped and NAT64 IPv6 addresses are judged
 * by the IPv4 address they carry.
 */
import { lookup } from 'node:dns/promises'
import { BlockList, isIP } from 'node:net'

export type AddressClass =
  'public' | 'loopback' | 'link_local' | 'private' | 'cgnat' | 'unspecified' | 'reserved'

/** One resolved address, as `dns.lookup(..., { all: true })` gives it. */
export interface ResolvedAddress {
  readonly address: string
  readonly family: number
}

/** Resolves a host name to every address it has (tests inject hostile answers). */
export type ResolveHost = (hostname: string) => Promise<readonly ResolvedAddress[]>

export const systemResolveHost: ResolveHost = (hostname) => lookup(hostname, { all: true })

type Family = 'ipv4' | 'ipv6'
type Subnet = readonly [network: string, prefix: number, family: Family]

// Checked in this order; the first match wins. `::ffff:0:0/96` needs no entry:
// BlockList matches IPv4-mapped IPv6 addresses against the IPv4 rules.
const CLASS_SUBNETS: readonly (readonly [Exclude<AddressClass, 'public'>, readonly Subnet[]])[] = [
  [
    'unspecified',
    [
      ['0.0.0.0', 8, 'ipv4'],
      ['::', 128, 'ipv6'],
    ],
  ],
  [
    'loopback',
    [
      ['127.0.0.0', 8, 'ipv4'],
      ['::1', 128, 'ipv6'],
    ],
  ],
  [
    'link_local',
    [
      ['169.254.0.0', 16, 'ipv4'],
      ['fe80::', 10, 'ipv6'],
    ],
  ],
  [
    'private',
    [
      ['10.0.0.0', 8, 'ipv4'],
      ['172.16.0.0', 12, 'ipv4'],
      ['192.168.0.0', 16, 'ipv4'],
      ['fc00::', 7, 'ipv6'], // unique local (RFC 4193)
      ['fec0::', 10, 'ipv6'], // deprecated site-local
    ],
  ],
  ['cgnat', [['100.64.0.0', 10, 'ipv4']]],
  [
    'reserved',
    [
      ['192.0.0.0', 24, 'ipv4'], // IETF protocol assignments
      ['198.18.0.0', 15, 'ipv4'], // benchmarking
      ['224.0.0.0', 4, 'ipv4'], // multicast
      ['240.0.0.0', 4, 'ipv4'], // reserved, and the broadcast address
      ['::', 96, 'ipv6'], // IPv4-compatible (deprecated)
      ['100::', 64, 'ipv6'], // discard-only
      ['ff00::', 8, 'ipv6'], // multicast
    ],
  ],
]

const CLASS_LISTS = CLASS_SUBNETS.map(([cls, subnets]) => {
  const list = new BlockList()
  for (const [network, prefix, family] of subnets) list.addSubnet(network, prefix, family)
  return [cls, list] as const
})

/** NAT64 well-known prefix (RFC 6052): the last 32 bits are an IPv4 address. */
const NAT64 = (() => {
  const list = new BlockList()
  list.addSubnet('64:ff9b::', 96, 'ipv6')
  return list
})()

/** The class of an IP address literal (`10.0.0.1`, `::1`, `::ffff:127.0.0.1`). */
export function addressClass(address: string): AddressClass {
  const version = isIP(address)
  if (version === 0) return 'reserved'
  const family: Family = version === 4 ? 'ipv4' : 'ipv6'
  if (family === 'ipv6' && NAT64.check(address, 'ipv6')) {
    const embedded = embeddedIpv4(address)
    if (embedded !== undefined) return addressClass(embedded)
  }
  for (const [cls, list] of CLASS_LISTS) if (list.check(address, family)) return cls
  return 'public'
}

/** The IP literal in a URL host (`[::1]` -> `::1`), or undefined for a name. */
export function ipLiteral(hostname: string): string | undefined {
  const bare = hostname.startsWith('[') && hostname.endsWith(']') ? hostname.slice(1, -1) : hostname
  return isIP(bare) === 0 ? undefined : bare
}

/** The classes of every address a host has (an IP literal has one). */
export async function hostClasses(
  hostname: string,
  resolveHost: ResolveHost,
): Promise<ReadonlySet<AddressClass>> {
  const literal = ipLiteral(hostname)
  if (literal !== undefined) return new Set([addressClass(literal)])
  const addresses = await resolveHost(hostname)
  return new Set(addresses.map((a) => addressClass(a.address)))
}

/** The IPv4 address in the last 32 bits of an IPv6 address (NAT64). */
function embeddedIpv4(address: string): string | undefined {
  // Expand `::` so the last two groups are the last 32 bits.
  const [head = '', tail] = address.split('::')
  const groups = tail === undefined ? head.split(':') : [...head.split(':'), '', ...tail.split(':')]
  const last = groups.at(-1) ?? ''
  if (last.includes('.')) return isIP(last) === 4 ? last : undefined
  const hi = Number.parseInt(groups.at(-2) ?? '0', 16) || 0
  const lo = Number.parseInt(last, 16) || 0
  return `${hi >> 8}.${hi & 0xff}.${lo >> 8}.${lo & 0xff}`
}
