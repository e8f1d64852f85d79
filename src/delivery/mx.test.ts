import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startDnsServer, type EmbeddedDnsServer } from '../dns/embedded-server.ts';
import { createResolver } from '../dns/resolver.ts';
import type { DnsRecord } from '../dns/types.ts';
import { resolveDestinations } from './mx.ts';

const mx = (name: string, preference: number, exchange: string): DnsRecord => ({ name, type: 'MX', data: { preference, exchange } });
const a = (name: string, address: string): DnsRecord => ({ name, type: 'A', data: address });
const aaaa = (name: string, address: string): DnsRecord => ({ name, type: 'AAAA', data: address });

let dns: EmbeddedDnsServer;
// No cache, so tests that look up the same names repeatedly (shuffling) see every answer fresh.
const resolver = () => createResolver({ servers: [dns.address], cacheTtlCapSeconds: 0, timeoutMs: 1000, tries: 1 });

before(async () => {
  dns = await startDnsServer({
    zones: [
      {
        origin: 'mx.test',
        records: [
          mx('pref.mx.test', 20, 'backup.mx.test'),
          mx('pref.mx.test', 10, 'primary.mx.test'),
          a('primary.mx.test', '192.0.2.1'),
          aaaa('primary.mx.test', '2001:db8::1'),
          a('backup.mx.test', '192.0.2.2'),

          mx('equal.mx.test', 10, 'one.mx.test'),
          mx('equal.mx.test', 10, 'two.mx.test'),
          a('one.mx.test', '192.0.2.11'),
          a('two.mx.test', '192.0.2.12'),

          mx('null.mx.test', 0, '.'),
          a('implicit.mx.test', '192.0.2.20'),
          aaaa('implicit.mx.test', '2001:db8::20'),
          { name: 'nothing.mx.test', type: 'TXT', data: 'v=spf1 -all' },

          mx('partial.mx.test', 10, 'noaddr.mx.test'),
          mx('partial.mx.test', 20, 'primary.mx.test'),
          { name: 'noaddr.mx.test', type: 'TXT', data: 'exists, but has no address' },

          mx('dangling.mx.test', 10, 'noaddr.mx.test'),
          mx('dangling.mx.test', 20, 'gone.mx.test'),
        ],
      },
    ],
  });
});
after(() => dns.close());

describe('resolveDestinations', () => {
  it('orders MX hosts by preference, each with A then AAAA addresses', async () => {
    const d = await resolveDestinations(resolver(), 'pref.mx.test');
    assert.deepEqual(d, {
      kind: 'hosts',
      hosts: [
        { name: 'primary.mx.test', preference: 10, addresses: ['192.0.2.1', '2001:db8::1'] },
        { name: 'backup.mx.test', preference: 20, addresses: ['192.0.2.2'] },
      ],
    });
  });

  it('accepts a trailing dot and upper case in the domain', async () => {
    const d = await resolveDestinations(resolver(), 'PREF.mx.test.');
    assert.equal(d.kind, 'hosts');
  });

  it('shuffles MX hosts of equal preference', async () => {
    const firsts = new Set<string>();
    for (let i = 0; i < 40 && firsts.size < 2; i++) {
      const d = await resolveDestinations(resolver(), 'equal.mx.test');
      assert.equal(d.kind, 'hosts');
      if (d.kind === 'hosts') {
        assert.equal(d.hosts.length, 2);
        firsts.add(d.hosts[0]!.name);
      }
    }
    assert.deepEqual([...firsts].sort(), ['one.mx.test', 'two.mx.test']);
  });

  it('treats a null MX as a permanent 5.1.10', async () => {
    const d = await resolveDestinations(resolver(), 'null.mx.test');
    assert.equal(d.kind, 'permanent');
    assert.equal(d.kind === 'permanent' && d.enhanced, '5.1.10');
    assert.match(d.kind === 'permanent' ? d.reason : '', /null\.mx\.test: domain does not accept mail/);
  });

  it('uses the domain itself (A, AAAA) when it has no MX records', async () => {
    const d = await resolveDestinations(resolver(), 'implicit.mx.test');
    assert.deepEqual(d, { kind: 'hosts', hosts: [{ name: 'implicit.mx.test', preference: 0, addresses: ['192.0.2.20', '2001:db8::20'] }] });
  });

  it('fails permanently (5.1.2) for a domain without MX or address records', async () => {
    const d = await resolveDestinations(resolver(), 'nothing.mx.test');
    assert.deepEqual(d, { kind: 'permanent', enhanced: '5.1.2', reason: 'nothing.mx.test: no MX or address records' });
  });

  it('fails permanently (5.1.2) for NXDOMAIN', async () => {
    const d = await resolveDestinations(resolver(), 'missing.mx.test');
    assert.equal(d.kind, 'permanent');
    assert.equal(d.kind === 'permanent' && d.enhanced, '5.1.2');
  });

  it('skips MX hosts without addresses', async () => {
    const d = await resolveDestinations(resolver(), 'partial.mx.test');
    assert.equal(d.kind, 'hosts');
    assert.deepEqual(d.kind === 'hosts' && d.hosts.map((h) => h.name), ['primary.mx.test']);
  });

  it('defers (4.4.3) when no MX host has an address', async () => {
    const d = await resolveDestinations(resolver(), 'dangling.mx.test');
    assert.equal(d.kind, 'temporary');
    assert.equal(d.kind === 'temporary' && d.enhanced, '4.4.3');
    assert.match(d.kind === 'temporary' ? d.reason : '', /noaddr\.mx\.test: ENODATA; gone\.mx\.test: ENOTFOUND/);
  });

  it('defers (4.4.3) when the DNS server refuses to answer', async () => {
    // Outside the served zones the embedded server answers REFUSED.
    const d = await resolveDestinations(resolver(), 'elsewhere.test');
    assert.deepEqual(d, { kind: 'temporary', enhanced: '4.4.3', reason: 'elsewhere.test: MX lookup failed (EREFUSED)' });
  });

  it('defers (4.4.3) when no DNS server answers', async () => {
    const dead = createResolver({ servers: ['127.0.0.1:9'], timeoutMs: 200, tries: 1 });
    const d = await resolveDestinations(dead, 'pref.mx.test');
    assert.equal(d.kind, 'temporary');
    assert.equal(d.kind === 'temporary' && d.enhanced, '4.4.3');
  });

  it('delivers address literals to the address, without DNS', async () => {
    const dead = createResolver({ servers: ['127.0.0.1:9'], timeoutMs: 200, tries: 1 });
    assert.deepEqual(await resolveDestinations(dead, '[192.0.2.7]'), {
      kind: 'hosts',
      hosts: [{ name: '[192.0.2.7]', preference: 0, addresses: ['192.0.2.7'] }],
    });
    assert.deepEqual(await resolveDestinations(dead, '[IPv6:2001:db8::7]'), {
      kind: 'hosts',
      hosts: [{ name: '[ipv6:2001:db8::7]', preference: 0, addresses: ['2001:db8::7'] }],
    });
  });
});
