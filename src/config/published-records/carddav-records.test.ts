import { test } from 'node:test';
import assert from 'node:assert/strict';
import { carddavRecords } from './carddav-records.ts';
import { zoneLine } from './dns-records.ts';

test('RFC 6764 SRV and TXT records per domain', () => {
  const lines = carddavRecords({ hostname: 'mx.a.test', domains: ['a.test', 'b.test'], http: { host: '0.0.0.0', port: 8443, tls: true } }).map(zoneLine);
  assert.deepEqual(lines, [
    '_carddavs._tcp.a.test.\t3600\tIN\tSRV\t0 1 8443 mx.a.test.\t; CardDAV over HTTPS (RFC 6764)',
    '_carddavs._tcp.a.test.\t3600\tIN\tTXT\t"path=/dav/"\t; CardDAV context path (RFC 6764)',
    '_carddavs._tcp.b.test.\t3600\tIN\tSRV\t0 1 8443 mx.a.test.\t; CardDAV over HTTPS (RFC 6764)',
    '_carddavs._tcp.b.test.\t3600\tIN\tTXT\t"path=/dav/"\t; CardDAV context path (RFC 6764)',
  ]);
  const proxied = carddavRecords({ hostname: 'mx.a.test', domains: ['a.test'], http: { host: '127.0.0.1', port: 8080, tls: false } });
  assert.equal(proxied[0]?.value, '0 1 443 mx.a.test.');
});
