/**
 * Fault tests for outbound delivery (issue #6): peers that stall after
 * DATA, drop the connection mid-DATA or answer slowly, and DNS that times
 * out or answers SERVFAIL. The queue must defer (never fail, never send a
 * DSN) and deliver every message exactly once when the peer or DNS
 * recovers: nothing is lost.
 *
 * The sender is a twoway sending stack built from its parts
 * (helpers/fault-peers.ts: SQLite queue, worker, SMTP transport with a 3 s
 * command timeout instead of RFC 5321's 10 minutes: short enough to see a
 * stall quickly, long enough that B's reply to a proxied message's final
 * dot on a loaded machine is not taken for one, which would deliver it
 * twice). The MX of b.test
 * (127.0.0.4) is a fake that misbehaves for its first connections and then
 * proxies to the real server B (127.0.0.3, same port).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startDnsServer, type EmbeddedDnsServer } from '../src/dns/embedded-server.ts';
import { commonFreePort, eventually, send, startTestServer, type TestServer } from './helpers/server.ts';
import { startFakeDns, startFakeMx, startSender, type FakeMx, type FakeMxMode, type Sender } from './helpers/fault-peers.ts';

const A_HOST = '127.0.0.2';
const B_HOST = '127.0.0.3';
const MX_HOST = '127.0.0.4';
const RCPT = 'bea@b.test';
const MESSAGES = 4;

describe('faults: misbehaving peers and DNS', { timeout: 120_000 }, () => {
  let dns: EmbeddedDnsServer;
  let b: TestServer;
  let port: number;

  before(async () => {
    dns = await startDnsServer();
    port = await commonFreePort([B_HOST, MX_HOST]);
    b = await startTestServer({ domain: 'b.test', dns, host: B_HOST, smtpPort: port });
    await b.server.services.accounts.add(RCPT, 'bea-password', 'open');
    dns.add([
      { name: 'b.test', type: 'MX', data: { preference: 10, exchange: 'mx.b.test' } },
      { name: 'mx.b.test', type: 'A', data: MX_HOST },
    ]);
    // B's first message starts its authentication workers (mail/auth-pool.ts), which can take
    // longer than the sender's command timeout here; a sender that times out on a message B
    // then stores retries it, a duplicate that is SMTP's, not the queue's. Warm B first, as a
    // server that has been running is.
    await send({ port, host: B_HOST, from: 'warm@b.test', to: RCPT, subject: 'warm-up' });
  });
  after(async () => {
    await b?.close();
    await dns?.close();
  });

  async function subjectsAtB(prefix: string): Promise<string[]> {
    const user = await b.server.services.accounts.get(RCPT);
    return (await b.server.services.mail.list(user.id, 'INBOX', { limit: 10_000 })).map((m) => m.subject ?? '').filter((s) => s.startsWith(prefix));
  }

  /** Queues MESSAGES messages, waits until B holds them all, and checks: each exactly once, all delivered, no failure, no DSN. */
  async function deliversEverything(sender: Sender, prefix: string): Promise<{ errors: string[] }> {
    const subjects = Array.from({ length: MESSAGES }, (_, i) => `${prefix} ${i}`);
    const ids = new Set<string>();
    for (const s of subjects) ids.add(await sender.queue(RCPT, s));
    const errors = new Set<string>();
    await eventually(async () => {
      const entries = (await sender.entries()).filter((e) => ids.has(e.messageId));
      for (const e of entries) if (e.status.state === 'deferred') errors.add(e.status.lastError);
      return entries.length === MESSAGES && entries.every((e) => e.status.state === 'delivered');
    }, 30_000, `all ${prefix} messages delivered`);
    const got = await eventually(async () => {
      const s = await subjectsAtB(prefix);
      return s.length >= MESSAGES ? s : undefined;
    }, 10_000, `${prefix} messages at b`);
    assert.deepEqual(got.sort(), subjects.sort(), 'each message exactly once at B');
    assert.deepEqual(sender.dsns, [], 'no DSN: nothing failed or was reported delayed');
    return { errors: [...errors] };
  }

  for (const [mode, errorPattern] of [
    ['stall-after-data', /did not answer in time/],
    ['drop-mid-data', /closed the connection/],
  ] as const) {
    it(`defers when the MX ${mode === 'stall-after-data' ? 'stalls after DATA' : 'drops the connection mid-DATA'}, then delivers every message once it behaves`, async (t) => {
      const fake = await startFakeMx({ host: MX_HOST, port, target: { host: B_HOST, port }, modeFor: (n) => (n < 2 ? mode : 'proxy') });
      const sender = await startSender({ dns: dns.address, port, localAddress: A_HOST });
      try {
        const r = await deliversEverything(sender, mode);
        t.diagnostic(`fake MX sessions: ${fake.sessions.join(', ')}; deferred with: ${r.errors.join(' | ')}`);
        assert.ok(r.errors.length > 0 && r.errors.every((e) => /^4\.\d\.\d/.test(e)), `deferred with temporary errors: ${r.errors.join(' | ')}`);
        assert.ok(r.errors.some((e) => errorPattern.test(e)), `the error names the fault: ${r.errors.join(' | ')}`);
      } finally {
        await sender.close();
        await fake.close();
      }
    });
  }

  it('delivers through a slow MX (every reply 300 ms late) without deferring', async (t) => {
    const fake: FakeMx = await startFakeMx({ host: MX_HOST, port, target: { host: B_HOST, port }, modeFor: (): FakeMxMode => 'slow', delayMs: 300 });
    const sender = await startSender({ dns: dns.address, port, localAddress: A_HOST, commandTimeoutMs: 2000, connectTimeoutMs: 5000 });
    try {
      const began = Date.now();
      const r = await deliversEverything(sender, 'slow');
      t.diagnostic(`${MESSAGES} messages in ${Date.now() - began} ms over ${fake.sessions.length} slow sessions`);
      assert.deepEqual(r.errors, [], 'never deferred');
    } finally {
      await sender.close();
      await fake.close();
    }
  });

  for (const mode of ['silent', 'servfail'] as const) {
    it(`defers while DNS ${mode === 'silent' ? 'times out' : 'answers SERVFAIL'}, and delivers once it answers`, async (t) => {
      const fake = await startFakeMx({ host: MX_HOST, port, target: { host: B_HOST, port }, modeFor: () => 'proxy' });
      const fakeDns = await startFakeDns({ host: dns.host, port: dns.port }, mode);
      // Long enough for a healthy answer on a loaded machine once the fake forwards (the test then
      // expects no deferral), short enough to see two timeouts in the wait below.
      const sender = await startSender({ dns: fakeDns.address, port, localAddress: A_HOST, dnsTimeoutMs: 1500 });
      try {
        await sender.queue(RCPT, `dns-${mode} probe`);
        const deferred = await eventually(async () => {
          const [e] = await sender.entries();
          return e?.status.state === 'deferred' && e.status.attempts >= 2 ? e.status : undefined;
        }, 15_000, 'deferred twice');
        t.diagnostic(`while DNS is ${mode}: ${deferred.attempts} attempts, ${JSON.stringify(deferred.lastError)}; ${fakeDns.queries} queries`);
        assert.match(deferred.lastError, /^4\.4\.\d /, 'a temporary DNS failure');
        fakeDns.mode = 'forward';
        await eventually(async () => (await subjectsAtB(`dns-${mode} probe`)).length === 1, 15_000, 'the probe at b');
        const r = await deliversEverything(sender, `dns-${mode}-after`);
        assert.deepEqual(r.errors, []);
        assert.equal((await subjectsAtB(`dns-${mode} probe`)).length, 1, 'the deferred message arrived once');
      } finally {
        await sender.close();
        await fakeDns.close();
        await fake.close();
      }
    });
  }
});
