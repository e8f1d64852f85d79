/**
 * A Two-Way Mail stranger's notice has no body to score, so the recipient
 * scans what it has: the introduction, through a real private rspamd. The
 * score ranks the contact request and marks it likely spam; the answer to
 * the sender stays `pending` whatever rspamd thinks (docs/architecture.md
 * section 8). Two real servers on loopback, as in the TWM tests.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startDnsServer, type EmbeddedDnsServer } from '../src/dns/embedded-server.ts';
import { GTUBE, startRspamd, type TestRspamd } from './helpers/rspamd.ts';
import { commonFreePort, eventually, submit, type TestServer } from './helpers/server.ts';
import { createTwmLab, startDomain, type TwmLab } from './helpers/twm.ts';

describe("spam filter: a TWM stranger's introduction", () => {
  let dns: EmbeddedDnsServer;
  let lab: TwmLab;
  let rspamd: TestRspamd;
  let a: TestServer;
  let b: TestServer;

  before(async () => {
    rspamd = await startRspamd({ redisDb: 11 });
    dns = await startDnsServer();
    lab = createTwmLab();
    const port = await commonFreePort(['127.0.0.2', '127.0.0.3']);
    a = await startDomain({ lab, dns, domain: 'a.test', host: '127.0.0.2', smtpPort: port });
    b = await startDomain({ lab, dns, domain: 'b.test', host: '127.0.0.3', smtpPort: port, extraToml: rspamd.toml() });
    for (const name of ['sam', 'sid']) await a.server.services.accounts.add(`${name}@a.test`, `${name}-password`, 'open');
    await b.server.services.accounts.add('bea@b.test', 'bea-password', 'screen');
  });
  after(async () => {
    for (const t of [a, b]) await t?.close();
    await dns?.close();
    lab?.close();
    await rspamd?.close();
  });

  const ask = (name: string, intro: string) =>
    submit({
      port: a.server.submission!.port,
      host: '127.0.0.2',
      user: `${name}@a.test`,
      pass: `${name}-password`,
      to: 'bea@b.test',
      raw: Buffer.from(`From: ${name}@a.test\r\nTo: bea@b.test\r\nSubject: hello from ${name}\r\nTWM-Intro: ${intro}\r\n\r\nThe body stays at a.test.\r\n`),
    });

  it('is scanned: the score ranks the request, a spammy one is marked likely spam, and the answer stays pending', async () => {
    await ask('sam', 'Hi Bea, we met at the garden club on Saturday; may I send you the photos?');
    await ask('sid', `Cheap offer ${GTUBE}`);
    const bea = (await b.server.services.accounts.get('bea@b.test')).id;
    const request = (sender: string) =>
      eventually(async () => (await b.server.services.screener.list(bea, undefined, { likelySpam: true })).find((r) => r.sender === sender), 20_000, `request from ${sender}`);
    const sam = await request('sam@a.test');
    const sid = await request('sid@a.test');
    assert.equal(typeof sam.spamScore, 'number', 'the introduction was scanned');
    assert.equal(sam.likelySpam, false);
    assert.equal(typeof sid.spamScore, 'number');
    assert.equal(sid.likelySpam, true, 'GTUBE in the introduction');
    assert.ok(sid.spamScore! > sam.spamScore!, `${sid.spamScore} > ${sam.spamScore}`);
    // Nothing was fetched, and each sender sees "pending" as for any stranger.
    for (const name of ['sam', 'sid']) {
      const sender = await a.server.services.accounts.get(`${name}@a.test`);
      await eventually(async () => (await a.server.services.sent.list(sender)).some((m) => m.recipients.some((r) => r.recipient === 'bea@b.test' && r.status === 'pending')), 10_000, `${name} pending`);
    }
    assert.deepEqual((await b.server.services.mail.list(bea)).filter((m) => /hello from/.test(m.subject ?? '')), []);
  });
});
