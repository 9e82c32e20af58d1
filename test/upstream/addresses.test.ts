import t from 'tap'
import { addressClass, hostClasses, ipLiteral } from '../../src/upstream/addresses.ts'

t.test('addresses are classed as the IANA special-purpose registries say', async (t) => {
  const cases: [string, string][] = [
    ['8.8.8.8', 'public'],
    ['2606:4700:4700::1111', 'public'],
    ['127.0.0.1', 'loopback'],
    ['127.255.0.9', 'loopback'],
    ['::1', 'loopback'],
    ['169.254.169.254', 'link_local'],
    ['fe80::1', 'link_local'],
    ['10.0.0.1', 'private'],
    ['172.16.0.1', 'private'],
    ['172.31.255.255', 'private'],
    ['172.32.0.1', 'public'],
    ['192.168.1.1', 'private'],
    ['fd12:3456::1', 'private'],
    ['100.64.0.1', 'cgnat'],
    ['0.0.0.0', 'unspecified'],
    ['::', 'unspecified'],
    ['224.0.0.1', 'reserved'],
    ['255.255.255.255', 'reserved'],
    ['ff02::1', 'reserved'],
  ]
  for (const [address, cls] of cases) t.equal(addressClass(address), cls, address)
})

t.test('IPv4-mapped and NAT64 IPv6 addresses are judged by the IPv4 address inside', async (t) => {
  t.equal(addressClass('::ffff:127.0.0.1'), 'loopback')
  t.equal(addressClass('::ffff:a9fe:a9fe'), 'link_local', '169.254.169.254 in hex')
  t.equal(addressClass('::ffff:10.0.0.1'), 'private')
  t.equal(addressClass('64:ff9b::a9fe:a9fe'), 'link_local')
  t.equal(addressClass('64:ff9b::8.8.8.8'), 'public')
})

t.test('URL hosts are IP literals only when they parse as one', async (t) => {
  t.equal(ipLiteral(new URL('http://[::ffff:10.0.0.1]/').hostname), '::ffff:a00:1')
  t.equal(ipLiteral(new URL('http://2130706433/').hostname), '127.0.0.1', 'URL normalizes it')
  t.equal(ipLiteral('cdn.example.com'), undefined)
  t.same(
    [...(await hostClasses('cdn.test', async () => [{ address: '10.1.2.3', family: 4 }]))],
    ['private'],
  )
})
