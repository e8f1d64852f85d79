import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isPublicAddress } from './ip-ranges.ts';

/** [address, public?, why] */
const TABLE: ReadonlyArray<readonly [string, boolean, string]> = [
  // Public addresses, including the edges just outside each refused range.
  ['8.8.8.8', true, 'public IPv4'],
  ['1.0.0.1', true, 'just above 0.0.0.0/8'],
  ['9.255.255.255', true, 'just below 10.0.0.0/8'],
  ['11.0.0.0', true, 'just above 10.0.0.0/8'],
  ['100.63.255.255', true, 'just below 100.64.0.0/10'],
  ['100.128.0.0', true, 'just above 100.64.0.0/10'],
  ['126.255.255.255', true, 'just below 127.0.0.0/8'],
  ['128.0.0.0', true, 'just above 127.0.0.0/8'],
  ['169.253.255.255', true, 'just below 169.254.0.0/16'],
  ['172.15.255.255', true, 'just below 172.16.0.0/12'],
  ['172.32.0.0', true, 'just above 172.16.0.0/12'],
  ['192.0.1.0', true, 'just above 192.0.0.0/24'],
  ['192.0.2.1', true, 'TEST-NET-1 is not in the list'],
  ['192.167.255.255', true, 'just below 192.168.0.0/16'],
  ['198.17.255.255', true, 'just below 198.18.0.0/15'],
  ['198.20.0.0', true, 'just above 198.18.0.0/15'],
  ['223.255.255.255', true, 'just below 224.0.0.0/3'],
  ['2001:db8::1', true, 'public IPv6 (documentation prefix is not in the list)'],
  ['2606:4700:4700::1111', true, 'public IPv6'],
  ['fbff:ffff::1', true, 'just below fc00::/7'],
  ['fe00::1', true, 'between fc00::/7 and fe80::/10'],
  ['fec0::1', true, 'just above fe80::/10'],
  ['::ffff:8.8.8.8', true, 'IPv4-mapped public'],
  ['::ffff:808:808', true, 'IPv4-mapped public, hex form'],
  ['::8.8.8.8', true, 'IPv4-compatible public'],
  ['64:ff9b::8.8.8.8', true, 'NAT64 of a public address'],
  ['2002:808:808::1', true, '6to4 of a public address'],
  ['2001:DB8::A', true, 'upper-case hex'],

  // Section 4.4, IPv4.
  ['0.0.0.0', false, '0.0.0.0/8'],
  ['0.255.255.255', false, '0.0.0.0/8'],
  ['10.0.0.1', false, '10.0.0.0/8'],
  ['10.255.255.255', false, '10.0.0.0/8'],
  ['100.64.0.1', false, '100.64.0.0/10'],
  ['100.127.255.255', false, '100.64.0.0/10'],
  ['127.0.0.1', false, '127.0.0.0/8'],
  ['127.255.255.254', false, '127.0.0.0/8'],
  ['169.254.169.254', false, '169.254.0.0/16 (cloud metadata)'],
  ['172.16.0.1', false, '172.16.0.0/12'],
  ['172.31.255.255', false, '172.16.0.0/12'],
  ['192.0.0.8', false, '192.0.0.0/24'],
  ['192.168.1.1', false, '192.168.0.0/16'],
  ['198.18.0.1', false, '198.18.0.0/15'],
  ['198.19.255.255', false, '198.18.0.0/15'],
  ['224.0.0.1', false, '224.0.0.0/3 multicast'],
  ['240.0.0.1', false, '224.0.0.0/3 reserved'],
  ['255.255.255.255', false, '224.0.0.0/3 broadcast'],

  // Section 4.4, IPv6.
  ['::', false, '::/128'],
  ['0:0:0:0:0:0:0:0', false, '::/128 in full'],
  ['::1', false, '::1/128'],
  ['0:0:0:0:0:0:0:1', false, '::1/128 in full'],
  ['fc00::1', false, 'fc00::/7'],
  ['fd12:3456:789a::1', false, 'fc00::/7'],
  ['fe80::1', false, 'fe80::/10'],
  ['febf:ffff::1', false, 'fe80::/10'],
  ['ff02::1', false, 'ff00::/8'],
  ['FF05::2', false, 'ff00::/8 upper-case'],

  // IPv4-mapped and IPv4-compatible forms.
  ['::ffff:127.0.0.1', false, 'IPv4-mapped loopback'],
  ['::ffff:7f00:1', false, 'IPv4-mapped loopback, hex form'],
  ['0:0:0:0:0:ffff:10.1.2.3', false, 'IPv4-mapped 10/8 in full'],
  ['::FFFF:169.254.169.254', false, 'IPv4-mapped link-local'],
  ['::127.0.0.1', false, 'IPv4-compatible loopback'],
  ['::a00:1', false, 'IPv4-compatible 10.0.0.1, hex form'],
  ['::192.168.0.1', false, 'IPv4-compatible 192.168/16'],
  ['64:ff9b::127.0.0.1', false, 'NAT64 of loopback'],
  ['2002:a00:1::1', false, '6to4 of 10.0.0.1'],

  // Malformed input is never public.
  ['', false, 'empty'],
  ['localhost', false, 'a name'],
  ['127.1', false, 'short IPv4'],
  ['2130706433', false, 'integer IPv4'],
  ['0x7f.0.0.1', false, 'hex octet'],
  ['010.0.0.1', false, 'leading zero (octal in some stacks)'],
  ['8.8.8.8 ', false, 'trailing space'],
  ['256.1.1.1', false, 'octet out of range'],
  ['1.2.3.4.5', false, 'five octets'],
  ['[2001:db8::1]', false, 'brackets'],
  ['fe80::1%eth0', false, 'zone id'],
  ['2001:db8::1::2', false, 'two ::'],
  ['2001:db8:1:2:3:4:5:6:7', false, 'nine groups'],
  ['2001:db8:1:2:3:4:5', false, 'seven groups without ::'],
  ['1:2:3:4:5:6:7:8::', false, ':: standing for no group'],
  ['2001:db8::12345', false, 'group too long'],
  ['2001:db8::g', false, 'not hex'],
  [':2001:db8::1', false, 'leading single colon'],
  ['2001:db8::1:', false, 'trailing single colon'],
  ['1.2.3.4::', false, 'dotted quad before ::'],
  ['::1.2.3.4:5', false, 'dotted quad not last'],
  ['::ffff:1.2.3', false, 'short embedded IPv4'],
];

for (const [address, expected, why] of TABLE) {
  test(`isPublicAddress(${JSON.stringify(address)}) is ${expected}: ${why}`, () => {
    assert.equal(isPublicAddress(address), expected);
  });
}
