import { test } from 'node:test';
import assert from 'node:assert/strict';
import { imapRecords } from './imap-records.ts';
import { zoneLine } from './dns-records.ts';

const imap = { enabled: true, host: '0.0.0.0', port: 143, tlsPort: 993, allowPlaintextAuth: false, maxConnections: 1, maxConnectionsPerIp: 1, maxConnectionsPerUser: 1, maxLine: 1, commandsPerSecond: 1, idleTimeoutMs: 1, wireCacheBytes: 0 };

test('RFC 6186 SRV records per domain: _imaps._tcp, _imap._tcp and _submission._tcp', () => {
  const lines = imapRecords({ hostname: 'mx.a.test', domains: ['a.test'], imap, submission: { enabled: true, host: '0.0.0.0', port: 587, addressLiterals: false, relaySenders: [] } }).map(zoneLine);
  assert.deepEqual(lines, [
    '_imaps._tcp.a.test.\t3600\tIN\tSRV\t0 1 993 mx.a.test.\t; IMAP over TLS (RFC 6186, RFC 8314)',
    '_imap._tcp.a.test.\t3600\tIN\tSRV\t10 1 143 mx.a.test.\t; IMAP with STARTTLS (RFC 6186)',
    '_submission._tcp.a.test.\t3600\tIN\tSRV\t0 1 587 mx.a.test.\t; mail submission with STARTTLS (RFC 6186)',
  ]);
  assert.deepEqual(imapRecords({ hostname: 'mx.a.test', domains: ['a.test'], imap: { ...imap, enabled: false }, submission: { enabled: false, host: '', port: 587, addressLiterals: false, relaySenders: [] } }), []);
});
