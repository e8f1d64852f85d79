/**
 * The authentication workers' short reuse of DNS answers (auth-worker.ts,
 * `dnsReuseMs`): a second message from the same sender needs no lookup
 * through the main thread, negative answers are kept like records, an
 * uncacheable failure (a timeout) is asked again, and 0 keeps nothing.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { DnsResolver } from '../dns/types.ts';
import { createAuthPool } from './auth-pool.ts';

const message = (from: string) =>
  Buffer.from(`From: <${from}>\r\nTo: <bea@b.test>\r\nSubject: x\r\nDate: Fri, 4 Dec 2026 10:00:00 +0000\r\nMessage-ID: <1@x>\r\n\r\nbody\r\n`);

/** A resolver that records every lookup: SPF and DMARC for a.test, nothing for gone.test, timeouts for slow.test. */
function recordingResolver(asked: string[]): DnsResolver {
  return {
    resolve: (async (name: string, rrtype: string) => {
      asked.push(`${rrtype} ${name}`);
      if (name === 'a.test' && rrtype === 'TXT') return [['v=spf1 ip4:127.0.0.1 -all']];
      if (name === '_dmarc.a.test' && rrtype === 'TXT') return [['v=DMARC1; p=reject']];
      const code = name.endsWith('slow.test') ? 'ETIMEOUT' : 'ENOTFOUND';
      throw Object.assign(new Error(`${code} ${name}`), { code });
    }) as DnsResolver['resolve'],
  };
}

async function twice(dnsReuseMs: number, from: string): Promise<{ first: string[]; second: string[]; spf: string[] }> {
  const asked: string[] = [];
  const pool = createAuthPool({ resolver: recordingResolver(asked), size: 1, dnsReuseMs });
  try {
    const input = { ip: '127.0.0.1', helo: 'client.test', envelopeFrom: from, from, mta: 'mx.b.test' };
    const a = await pool.authenticate({ ...input, raw: message(from) });
    const first = asked.splice(0);
    const b = await pool.authenticate({ ...input, raw: message(from) });
    return { first, second: asked.splice(0), spf: [a.spf.result, b.spf.result] };
  } finally {
    await pool.close();
  }
}

describe('authentication workers reuse DNS answers briefly', () => {
  it('asks the main thread once for a sender seen a moment ago, with the same outcome', async () => {
    const r = await twice(60_000, 'ann@a.test');
    assert.deepEqual(r.first.sort(), ['TXT _dmarc.a.test', 'TXT a.test']);
    assert.deepEqual(r.second, []);
    assert.deepEqual(r.spf, ['pass', 'pass']);
  });

  it('keeps "no such name" answers too', async () => {
    const r = await twice(60_000, 'ann@gone.test');
    assert.ok(r.first.includes('TXT gone.test'), r.first.join(', '));
    assert.deepEqual(r.second, []);
    assert.deepEqual(r.spf, ['none', 'none']);
  });

  it('asks again after a timeout', async () => {
    const r = await twice(60_000, 'ann@slow.test');
    assert.ok(r.first.includes('TXT slow.test'), r.first.join(', '));
    assert.ok(r.second.includes('TXT slow.test'), r.second.join(', '));
    assert.deepEqual(r.spf, ['temperror', 'temperror']);
  });

  it('keeps nothing with dnsReuseMs 0', async () => {
    const r = await twice(0, 'ann@a.test');
    assert.deepEqual(r.second.sort(), r.first.sort());
    assert.equal(r.second.length, 2);
  });
});
