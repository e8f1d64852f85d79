/**
 * The stored form the authentication worker prepares with its verdict (auth-worker.ts
 * `storedForm`): exactly the bytes ingest would store (the prefix, the authentication headers,
 * the message) with the SHA-256 and structure columns the store would compute for them, and the
 * message's own bytes handed back intact, a small message (whose Buffers share Node's pool) too.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import type { DnsResolver } from '../dns/types.ts';
import { structureColumns } from '../core/prepared-body.ts';
import { createAuthPool } from './auth-pool.ts';

const resolver: DnsResolver = {
  resolve: (async (name: string, rrtype: string) => {
    if (name === 'a.test' && rrtype === 'TXT') return [['v=spf1 ip4:127.0.0.1 -all']];
    throw Object.assign(new Error(`ENOTFOUND ${name}`), { code: 'ENOTFOUND' });
  }) as DnsResolver['resolve'],
};

const multipart = (filler: string) =>
  Buffer.from(
    'From: Ann <ann@a.test>\r\nTo: <bea@b.test>\r\nSubject: =?utf-8?q?caf=C3=A9?=\r\nDate: Fri, 4 Dec 2026 10:00:00 +0000\r\nMessage-ID: <1@a.test>\r\n' +
      'MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary="b"\r\n\r\n' +
      `--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\ncafé ${filler}\r\n--b\r\nContent-Type: text/html\r\n\r\n<p>x</p>\r\n--b--\r\n`,
  );

describe('the authentication worker prepares the stored form', () => {
  for (const [what, raw] of [
    ['a small message', multipart('')],
    ['a 20 KB message', multipart('x'.repeat(20_000))],
  ] as const) {
    it(`gives the bytes, SHA-256 and structure columns of prefix + authentication headers + message (${what})`, async () => {
      const pool = createAuthPool({ resolver, size: 1 });
      try {
        const copy = Buffer.from(raw);
        const prefix = 'Received: from client.test ([127.0.0.1])\r\n\tby mx.b.test (twoway) with ESMTP id Q1;\r\n\tFri, 4 Dec 2026 10:00:00 +0000\r\n';
        const input = { ip: '127.0.0.1', helo: 'client.test', envelopeFrom: 'ann@a.test', from: 'ann@a.test', mta: 'mx.b.test' };
        const auth = await pool.authenticate({ ...input, raw: copy, prefix });
        assert.equal(auth.spf.result, 'pass');
        assert.ok(auth.raw?.equals(raw), 'the message comes back intact');
        const stored = auth.stored;
        assert.ok(stored, 'a stored form with the verdict');
        assert.equal(stored.prepend, prefix + auth.headers);
        const expected = Buffer.concat([Buffer.from(prefix + auth.headers, 'utf8'), raw]);
        assert.ok(stored.raw.equals(expected), 'the bytes ingest would store');
        assert.equal(stored.sha256, createHash('sha256').update(expected).digest('hex'));
        assert.deepEqual(stored.columns, structureColumns(expected));
        assert.notEqual(stored.columns.structure, null);
        assert.equal(auth.mimeDepth, 1, "the message's MIME nesting depth");

        const without = await pool.authenticate({ ...input, raw: Buffer.from(raw) });
        assert.equal(without.stored, undefined, 'no prefix, no stored form');
        assert.equal(without.mimeDepth, undefined);
      } finally {
        await pool.close();
      }
    });
  }
});
