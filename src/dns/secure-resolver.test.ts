/**
 * The AD-reading resolver against Debian's unbound validating a zone signed
 * by ldns-signzone (served by test/helpers/signed-zone.ts) and an unsigned
 * zone in the embedded DNS server: what each kind of answer looks like.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDnsServer, type EmbeddedDnsServer } from './embedded-server.ts';
import { createSecureResolver, type SecureResolver } from './secure-resolver.ts';
import { generateZoneKeys, signZone, startSignedZoneServer, type SignedZoneServer } from '../../test/helpers/signed-zone.ts';
import { startUnbound, type Unbound } from '../../test/helpers/unbound.ts';

const ZONE = `@ IN SOA ns hostmaster 1 3600 600 86400 60
@ IN NS ns
ns IN A 127.0.0.1
_twoway._tcp IN SRV 10 10 8443 twm
twm IN A 127.0.0.1
bogus IN A 127.0.0.1
stripped IN A 127.0.0.1
spoofed IN TXT "there"
_8443._tcp.twm IN TLSA 3 1 1 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
`;

describe('secure resolver (AD bit) against unbound', () => {
  let dir: string;
  let signed: SignedZoneServer;
  let plain: EmbeddedDnsServer;
  let unbound: Unbound;
  let resolver: SecureResolver;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'twoway-dnssec-'));
    const keys = generateZoneKeys(dir, 'signed.test');
    signed = await startSignedZoneServer('signed.test', signZone(keys, ZONE));
    plain = await startDnsServer({ records: [{ name: '_twoway._tcp.plain.test', type: 'SRV', data: { priority: 1, weight: 1, port: 443, target: 'twm.plain.test' } }] });
    unbound = await startUnbound({ signed: [{ zone: 'signed.test', address: signed.address, ds: keys.ds }], fallback: plain.address, insecure: ['plain.test'] });
    resolver = createSecureResolver({ servers: [unbound.address], timeoutMs: 5000, cacheTtlCapSeconds: 0 });
  });
  after(async () => {
    await unbound?.close();
    await signed?.close();
    await plain?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('a good signature: records with AD', async () => {
    const srv = await resolver.query('_twoway._tcp.signed.test', 'SRV');
    assert.equal(srv.rcode, 'NOERROR', unbound.log());
    assert.equal(srv.authenticated, true);
    assert.equal(srv.records.length, 1);
    const tlsa = await resolver.query('_8443._tcp.twm.signed.test', 'TLSA');
    assert.equal(tlsa.authenticated, true);
    assert.equal(tlsa.records[0]?.type, 'TLSA');
  });

  it('a proven NXDOMAIN and NODATA carry AD', async () => {
    const nx = await resolver.query('_twoway._tcp.nothing.signed.test', 'SRV');
    assert.deepEqual([nx.rcode, nx.authenticated], ['NXDOMAIN', true]);
    const nodata = await resolver.query('twm.signed.test', 'TXT');
    assert.deepEqual([nodata.rcode, nodata.authenticated, nodata.records.length], ['NOERROR', true, 0]);
  });

  it('an unsigned zone answers without AD', async () => {
    const srv = await resolver.query('_twoway._tcp.plain.test', 'SRV');
    assert.deepEqual([srv.rcode, srv.authenticated, srv.records.length], ['NOERROR', false, 1], unbound.log());
  });

  it('a tampered record (bogus signature) is SERVFAIL', async () => {
    signed.tamper('bogus.signed.test', 1, Buffer.from([127, 0, 0, 9]));
    const a = await resolver.query('bogus.signed.test', 'A');
    assert.deepEqual([a.rcode, a.authenticated, a.records.length], ['SERVFAIL', false, 0]);
  });

  it('stripped signatures are SERVFAIL', async () => {
    signed.strip('stripped.signed.test');
    const a = await resolver.query('stripped.signed.test', 'A');
    assert.deepEqual([a.rcode, a.records.length], ['SERVFAIL', 0]);
  });

  it('a spoofed NXDOMAIN without proof is SERVFAIL, not NXDOMAIN', async () => {
    signed.spoof('spoofed.signed.test');
    const t = await resolver.query('spoofed.signed.test', 'TXT');
    assert.equal(t.rcode, 'SERVFAIL');
  });
});
