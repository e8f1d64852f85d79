// test-exclusive: times how fast a runaway authentication is stopped; run alone (scripts/run-tests.mjs).
/**
 * Security (issue 17, item 1): CPU-heavy parsing of untrusted input never
 * runs on the event loop without a bound. SPF/DKIM/DMARC (mailauth) run in
 * a pool of worker threads (src/mail/auth-pool.ts), each message within a
 * time budget:
 *
 * - the outcome is the same as authentication in the main thread, for
 *   passing and failing SPF, DKIM and DMARC, and the DNS lookups go through
 *   the main thread's one resolver and its cache;
 * - a message past the budget gets `451 4.7.0` over SMTP, nothing is
 *   stored, its worker is replaced and the next message is served;
 * - a worker that dies (out of memory here) is replaced, its message gets
 *   `451 4.3.0`;
 * - messages beyond the pool's size wait their turn, none is lost;
 * - close() answers what still waits with `451 4.3.2`.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startDnsServer, type EmbeddedDnsServer } from '../src/dns/embedded-server.ts';
import { createResolver } from '../src/dns/resolver.ts';
import { createAuthPool } from '../src/mail/auth-pool.ts';
import { createAuthenticator, type AuthInput } from '../src/mail/authenticate.ts';
import { messageFacts, parseHeaders } from '../src/mail/headers.ts';
import { RawSmtp } from './helpers/raw-smtp.ts';
import { senderDomain, startTestServer, type TestServer } from './helpers/server.ts';

const friends = senderDomain('friends.test');
const evil = senderDomain('evil.test', 'ev');
evil.records[0] = { name: 'evil.test', type: 'TXT', data: 'v=spf1 ip4:127.0.0.2 -all' };
/** SPF and DKIM, but no DMARC record. */
const plain = senderDomain('plain.test');
plain.records.splice(1, 1);

const DEL = '\x7f';

function message(from: string, subject: string, body = `Body of ${subject}.\r\n`): Buffer {
  return Buffer.from(
    `From: ${from}\r\nTo: someone@example.test\r\nSubject: ${subject}\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\nMessage-ID: <${subject.replace(/\W/g, '')}@test>\r\n\r\n${body}`,
    'utf8',
  );
}

/**
 * A message that is slow to verify and within every header limit: ten
 * DKIM-Signature fields, each with its own `l=`, so mailauth canonicalizes and
 * hashes the 20 MB body ten times (the signatures need not verify). Its lines
 * are runs of spaces and tabs, which relaxed canonicalization rewrites: about a
 * second of CPU even on a host with SHA instructions, where lines of plain
 * letters took 0.6 s, near the tests' 500 ms budget. `l=` stays within the
 * canonical body (670 bytes a line), or mailauth reports a short body on stdout.
 */
function slowMessage(from: string): Buffer {
  const body = `${'x \t'.repeat(332)}xx\r\n`.repeat(20_000);
  const sigs = Array.from(
    { length: 10 },
    (_, i) => `DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=friends.test; s=sel; h=from; l=${13_000_000 - i}; bh=AAAA; b=AAAA\r\n`,
  ).join('');
  return Buffer.from(`${sigs}From: ${from}\r\nTo: a@example.test\r\nSubject: slow\r\n\r\n${body}`, 'latin1');
}

const params = { ip: '127.0.0.1', helo: 'client.test', envelopeFrom: 'a@friends.test', mta: 'mx.example.test' };

describe('security: authentication runs in worker threads within a budget (issue 17, item 1)', { timeout: 300_000 }, () => {
  let dns: EmbeddedDnsServer;

  before(async () => {
    dns = await startDnsServer({ records: [...friends.records, ...evil.records, ...plain.records] });
  });
  after(() => dns?.close());

  it('gives the outcome of the main-thread path, for passing and failing SPF, DKIM and DMARC, through the one resolver', async () => {
    const resolver = createResolver({ servers: [dns.address] });
    const inThread = createAuthenticator(resolver);
    const pool = createAuthPool({ resolver, size: 2 });
    try {
      const signed = await friends.sign(message('Bob <bob@friends.test>', 'signed'));
      const tampered = Buffer.from(signed.toString('latin1').replace('Body of signed', 'Body of tampered'), 'latin1');
      const big = await friends.sign(message('bob@friends.test', 'big', `${'line of a long body\r\n'.repeat(5_000)}`));
      const cases: Array<{ name: string; raw: Buffer; ip: string; envelopeFrom: string | null; from?: string; expect: { spf: string; dkim: string[]; dmarc: string; aligned: string | null } }> = [
        { name: 'SPF, DKIM and DMARC pass', raw: signed, ip: '127.0.0.1', envelopeFrom: 'bob@friends.test', expect: { spf: 'pass', dkim: ['friends.test'], dmarc: 'pass', aligned: 'friends.test' } },
        { name: 'SPF fails, DKIM passes', raw: signed, ip: '127.0.0.2', envelopeFrom: 'bob@friends.test', expect: { spf: 'fail', dkim: ['friends.test'], dmarc: 'pass', aligned: 'friends.test' } },
        { name: 'DKIM fails (body changed), SPF passes', raw: tampered, ip: '127.0.0.1', envelopeFrom: 'bob@friends.test', expect: { spf: 'pass', dkim: [], dmarc: 'pass', aligned: 'friends.test' } },
        { name: 'everything fails: DMARC fail', raw: tampered, ip: '127.0.0.2', envelopeFrom: 'bob@friends.test', expect: { spf: 'fail', dkim: [], dmarc: 'fail', aligned: null } },
        { name: 'SPF passes for another domain: not aligned', raw: message('bob@friends.test', 'unaligned'), ip: '127.0.0.2', envelopeFrom: 'eve@evil.test', expect: { spf: 'pass', dkim: [], dmarc: 'fail', aligned: null } },
        { name: 'no DMARC record, SPF passes', raw: message('ann@plain.test', 'plain'), ip: '127.0.0.1', envelopeFrom: 'ann@plain.test', expect: { spf: 'pass', dkim: [], dmarc: 'none', aligned: 'plain.test' } },
        { name: 'null reverse-path (SPF checks the HELO name)', raw: signed, ip: '127.0.0.2', envelopeFrom: null, expect: { spf: 'none', dkim: ['friends.test'], dmarc: 'pass', aligned: 'friends.test' } },
        { name: 'unknown domain', raw: message('who@nowhere.test', 'nowhere'), ip: '127.0.0.1', envelopeFrom: 'who@nowhere.test', expect: { spf: 'none', dkim: [], dmarc: 'none', aligned: null } },
        { name: 'a From: the parsers disagree on', raw: message(`eve${DEL}@evil.test, g: bob@friends.test;`, 'forged'), ip: '127.0.0.2', envelopeFrom: 'eve@evil.test', expect: { spf: 'pass', dkim: [], dmarc: 'pass', aligned: null } },
        { name: 'a caller identity mailauth does not read', raw: message('eve@evil.test', 'disagree'), ip: '127.0.0.2', envelopeFrom: 'eve@evil.test', from: 'bob@friends.test', expect: { spf: 'pass', dkim: [], dmarc: 'pass', aligned: null } },
        { name: 'a large signed message (moved to the worker, not copied)', raw: big, ip: '127.0.0.1', envelopeFrom: 'bob@friends.test', expect: { spf: 'pass', dkim: ['friends.test'], dmarc: 'pass', aligned: 'friends.test' } },
      ];
      for (const c of cases) {
        const from = c.from ?? messageFacts(parseHeaders(c.raw)).from;
        const input: AuthInput = { ...params, raw: c.raw, ip: c.ip, envelopeFrom: c.envelopeFrom, from };
        const expected = await inThread({ ...input, raw: Buffer.from(c.raw) });
        // Warm in both paths: the pool's lookups must be answered from the same cache.
        const misses = resolver.stats().misses;
        // A Buffer that owns its memory, as smtp-server's end of DATA gives for any message past 4 KB.
        const owned = Buffer.alloc(c.raw.length, c.raw);
        const { raw: back, ...outcome } = await pool.authenticate({ ...input, raw: owned });
        assert.equal(resolver.stats().misses, misses, `${c.name}: the worker's lookups went to the main thread's cache`);
        assert.deepEqual(outcome, expected, c.name);
        assert.deepEqual(
          { spf: outcome.spf.result, dkim: outcome.dkimDomains, dmarc: outcome.dmarc.result, aligned: outcome.alignedDomain },
          c.expect,
          `${c.name}: the case covers what it says`,
        );
        assert.ok(back?.equals(c.raw), `${c.name}: the bytes came back intact`);
        assert.equal(owned.length, 0, `${c.name}: the bytes were transferred, not copied`);
      }
      // A small Buffer shares its memory with Node's pool: it is copied, and the caller's stays intact.
      const small = Buffer.from('From: bob@friends.test\r\n\r\nhi\r\n');
      const result = await pool.authenticate({ ...params, raw: small, from: 'bob@friends.test' });
      assert.equal(small.toString(), 'From: bob@friends.test\r\n\r\nhi\r\n');
      assert.ok(result.raw?.equals(small));
      assert.equal(pool.stats().died, 0);
    } finally {
      await pool.close();
    }
  });

  it('a message past the budget is stopped, its worker replaced, and the next message is served', async () => {
    const resolver = createResolver({ servers: [dns.address] });
    const pool = createAuthPool({ resolver, size: 1, budgetMs: 500 });
    try {
      // Started and warm first, so that the budget is the message's alone.
      await pool.run(message('bob@friends.test', 'warm'), params);
      const started = performance.now();
      await assert.rejects(pool.run(slowMessage('bob@friends.test'), params), (err: Error) => {
        assert.match(err.message, /^451 4\.7\.0 Authentication of this message took too long/);
        return true;
      });
      const stoppedAfter = performance.now() - started;
      // Seconds of hashing in the worker; the budget cut it short.
      assert.ok(stoppedAfter < 4_000, `stopped after ${stoppedAfter.toFixed(0)} ms`);
      const { summary } = await pool.run(await friends.sign(message('bob@friends.test', 'after')), params);
      assert.deepEqual(summary.dkimDomains, ['friends.test'], `the replacement worker verified the signature: ${JSON.stringify(summary)}`);
      const stats = pool.stats();
      assert.equal(stats.overBudget, 1);
      assert.equal(stats.spawned, 2, 'the stopped worker was replaced');
      // Idle for a few of the budget checks (every 100 ms here), so that their one timer stopped:
      // the next job starts it again and is held to the budget as well.
      await new Promise((resolve) => setTimeout(resolve, 350));
      await assert.rejects(pool.run(slowMessage('bob@friends.test'), params), /451 4\.7\.0/);
      assert.equal(pool.stats().overBudget, 2);
    } finally {
      await pool.close();
    }
  });

  it('a worker that dies is replaced; its message gets 451 4.3.0', async () => {
    const resolver = createResolver({ servers: [dns.address] });
    // A small heap and a From: of 400,000 addresses: the worker runs out of memory in mailauth's address parser.
    const pool = createAuthPool({ resolver, size: 1, heapMb: 32, budgetMs: 120_000 });
    try {
      const huge = Buffer.from(`From: ${Array.from({ length: 400_000 }, (_, i) => `u${i}@x.test`).join(',')}\r\nSubject: x\r\n\r\nbody\r\n`, 'latin1');
      await assert.rejects(pool.run(huge, params), (err: Error) => {
        assert.match(err.message, /^451 4\.3\.0 /);
        return true;
      });
      assert.equal(pool.stats().died, 1);
      const { summary } = await pool.run(await friends.sign(message('bob@friends.test', 'after a death')), params);
      assert.deepEqual(summary.dkimDomains, ['friends.test'], `the replacement worker verified the signature: ${JSON.stringify(summary)}`);
      assert.equal(pool.stats().spawned, 2);
    } finally {
      await pool.close();
    }
  });

  it('messages beyond the pool wait their turn (the end of DATA waits), and close() answers the rest with 451 4.3.2', async () => {
    const resolver = createResolver({ servers: [dns.address] });
    const pool = createAuthPool({ resolver, size: 1 });
    try {
      const runs = Array.from({ length: 5 }, (_, i) => pool.run(message('bob@friends.test', `queued ${i}`), params));
      assert.equal(pool.stats().queued, 5, 'one worker starting, five messages waiting');
      const results = await Promise.all(runs);
      assert.deepEqual(results.map((r) => r.summary.headerFrom), Array.from({ length: 5 }, () => ['bob@friends.test']));
      assert.equal(pool.stats().spawned, 1);
      const pending = Promise.allSettled([pool.run(message('bob@friends.test', 'late 1'), params), pool.run(message('bob@friends.test', 'late 2'), params)]);
      await pool.close();
      for (const r of await pending) {
        assert.equal(r.status, 'rejected');
        assert.match(String(r.reason), /451 4\.3\.2 Shutting down/);
      }
      await assert.rejects(pool.run(message('bob@friends.test', 'closed'), params), /451 4\.3\.2/);
    } finally {
      await pool.close();
    }
  });

  describe('over SMTP', () => {
    let t: TestServer;
    let userId: number;

    before(async () => {
      t = await startTestServer({ dns, edit: (toml) => toml.replace('[limits]\n', '[limits]\nauth_budget_ms = 500\nauth_workers = 1\n') });
      userId = (await t.server.services.accounts.add('alice@example.test', 'password-1', 'open')).id;
    });
    after(() => t?.close());

    it('a message slow to authenticate gets 451 4.7.0 and is not stored; the session and the server go on', async () => {
      assert.ok(t.server.authPool, 'the MX listener authenticates in the pool');
      const { client, greeting } = await RawSmtp.open(t.server.smtp.port);
      try {
        assert.match(greeting, /^220 /);
        assert.match(await client.command('EHLO client.test'), /^250/);
        const transaction = async (raw: Buffer) => {
          assert.match(await client.command('MAIL FROM:<bob@friends.test>'), /^250/);
          assert.match(await client.command('RCPT TO:<alice@example.test>'), /^250/);
          assert.match(await client.command('DATA'), /^354/);
          client.write(raw);
          client.write('\r\n.\r\n');
          return await client.reply(120_000);
        };
        assert.match(await transaction(message('bob@friends.test', 'first')), /^250 /);
        assert.match(await transaction(slowMessage('bob@friends.test')), /^451 4\.7\.0 Authentication of this message took too long/);
        assert.match(await transaction(await friends.sign(message('bob@friends.test', 'after the slow one'))), /^250 /);
        await client.command('QUIT').catch(() => '');
      } finally {
        client.close();
      }
      const subjects = (await t.server.services.mail.list(userId)).map((m) => m.subject).sort();
      assert.deepEqual(subjects, ['after the slow one', 'first'], 'the slow message was not stored');
      const stats = t.server.authPool.stats();
      assert.equal(stats.overBudget, 1);
      assert.equal(stats.spawned, 2);
    });
  });
});
