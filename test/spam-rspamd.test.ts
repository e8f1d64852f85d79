/**
 * Strangers' mail judged by a real rspamd (Debian's package, a private
 * instance on loopback, test/helpers/rspamd.ts), end to end over SMTP.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { spamOfMessage, type SpamScan } from '../src/core/spam.ts';
import { createRspamdClient } from '../src/spam/rspamd-client.ts';
import { GTUBE, JUNK_SUBJECT, startRspamd, type TestRspamd } from './helpers/rspamd.ts';
import { eventually, send, senderDomain, startTestServer, type TestServer } from './helpers/server.ts';

const fastRetries = (toml: string) => toml.replace('[delivery]\n', '[delivery]\nmin_backoff = "1s"\nmax_backoff = "2s"\n');
const BODY = 'Dear friend, the quarterly figures are attached below as promised in our earlier conversation about the garden project and the new fence.\n';

describe('spam filter with a real rspamd', () => {
  const stranger = senderDomain('stranger.test');
  const friend = senderDomain('friend.test');
  let rspamd: TestRspamd;
  let t: TestServer;
  let port: number;
  let open: number;
  let screen: number;
  let strict: number;

  before(async () => {
    rspamd = await startRspamd({ redisDb: 13 });
    t = await startTestServer({ records: [...stranger.records, ...friend.records], extraToml: rspamd.toml(), edit: fastRetries });
    port = t.server.smtp.port;
    open = (await t.server.services.accounts.add('open@example.test', 'password-1', 'open')).id;
    screen = (await t.server.services.accounts.add('screen@example.test', 'password-1', 'screen')).id;
    strict = (await t.server.services.accounts.add('strict@example.test', 'password-1', 'strict')).id;
    for (const u of [open, screen, strict]) await t.server.services.contacts.allow(u, 'pal@friend.test');
  });
  after(async () => {
    await t?.close();
    await rspamd?.close();
  });

  const s = () => t.server.services;
  const find = async (user: number, subject: string) => (await s().mail.list(user)).find((m) => m.subject === subject);

  it('refuses a GTUBE message with 550 5.7.1 in every mode', async () => {
    for (const rcpt of ['open@example.test', 'screen@example.test', 'strict@example.test']) {
      await assert.rejects(
        send({ port, from: 'spammer@stranger.test', to: rcpt, subject: `gtube ${rcpt}`, text: `${GTUBE}\n` }),
        (err: Error) => /550 5\.7\.1 Message refused as spam/.test(err.message),
        rcpt,
      );
    }
    for (const u of [open, screen, strict]) assert.equal((await s().mail.list(u)).length, 0);
  });

  it('accepts a plain stranger message: INBOX in open mode, the Screener in screen mode, marked scanned', async () => {
    assert.match(await send({ port, from: 'someone@stranger.test', to: ['open@example.test', 'screen@example.test'], subject: 'plain hello', text: BODY }), /^250/);
    const inOpen = await find(open, 'plain hello');
    assert.equal(inOpen?.mailbox, 'INBOX');
    assert.equal((await find(screen, 'plain hello'))?.mailbox, 'Screener');
    const view = spamOfMessage((await s().mail.get(open, inOpen!.id)).raw);
    assert.equal(view?.status, 'no');
    assert.equal(view?.action, 'no action');
    assert.ok(view!.symbols.length > 0, 'rspamd symbols are stored');
    const req = (await s().screener.list(screen)).find((r) => r.sender === 'someone@stranger.test');
    assert.equal(req?.likelySpam, false);
    assert.equal(typeof req?.spamScore, 'number');
  });

  it('add header: Junk in open mode, a request marked likely spam in screen mode', async () => {
    const subject = `offer ${JUNK_SUBJECT}`;
    assert.match(await send({ port, from: 'promo@stranger.test', to: ['open@example.test', 'screen@example.test'], subject, text: BODY }), /^250/);
    const junk = await find(open, subject);
    assert.equal(junk?.mailbox, 'Junk');
    const view = spamOfMessage((await s().mail.get(open, junk!.id)).raw);
    assert.equal(view?.status, 'yes');
    assert.equal(view?.action, 'add header');
    assert.ok(view!.symbols.some((x) => x.name === 'TWOWAY_TEST_JUNK'));
    assert.equal((await find(screen, subject))?.mailbox, 'Screener');
    assert.equal((await s().screener.list(screen)).find((r) => r.sender === 'promo@stranger.test'), undefined, 'likely spam is listed apart');
    const all = await s().screener.list(screen, undefined, { likelySpam: true });
    const req = all.find((r) => r.sender === 'promo@stranger.test');
    assert.equal(req?.likelySpam, true);
    assert.ok((req?.spamScore ?? 0) >= 6);
    assert.ok(req!.reputation.reasons.includes('likely spam'));
    // Ordered by evidence: the plain, authenticated stranger ranks above the likely spam.
    assert.ok(all.findIndex((r) => r.sender === 'someone@stranger.test') < all.indexOf(req!));
  });

  it('an automatic message is never refused: a GTUBE bounce goes to Junk', async () => {
    assert.match(await send({ port, from: 'mailer-daemon@stranger.test', envelopeFrom: '', to: 'open@example.test', subject: 'bounce gtube', text: `${GTUBE}\n` }), /^250/);
    assert.equal((await find(open, 'bounce gtube'))?.mailbox, 'Junk');
  });

  it('allowed contacts are never junked or refused, and not scanned', async () => {
    const signed = await friend.sign(
      Buffer.from(
        `From: pal@friend.test\r\nTo: open@example.test, screen@example.test, strict@example.test\r\nSubject: pal ${JUNK_SUBJECT}\r\nMessage-ID: <pal1@friend.test>\r\nDate: ${new Date().toUTCString()}\r\n\r\n${GTUBE}\r\n`,
      ),
    );
    // A strict recipient gets a transaction of its own (protocols/smtp/server.ts).
    assert.match(await send({ port, from: 'pal@friend.test', to: ['open@example.test', 'screen@example.test'], raw: signed }), /^250/);
    assert.match(await send({ port, from: 'pal@friend.test', to: 'strict@example.test', raw: signed }), /^250/);
    for (const u of [open, screen, strict]) {
      const m = await find(u, `pal ${JUNK_SUBJECT}`);
      assert.equal(m?.mailbox, 'INBOX');
      assert.equal(spamOfMessage((await s().mail.get(u, m!.id)).raw), null, 'not scanned: no X-Spam header');
    }
  });

  it('learning: a move into Junk reaches rspamd once; a retry after rspamd was down succeeds', async () => {
    await send({ port, from: 'news@stranger.test', to: 'open@example.test', subject: 'learn me', text: BODY.repeat(3) });
    const msg = (await find(open, 'learn me'))!;
    const before = rspamd.learns();
    assert.equal(await s().mail.move(open, [msg.id], 'Junk'), 1);
    assert.equal(await s().mail.move(open, [msg.id], 'Junk'), 0, 'already there');
    await eventually(async () => (await t.server.store.spamLearning.list({ userId: open })).find((r) => r.messageId === msg.id && r.state === 'done'), 20_000, 'learned');
    await t.server.spamLearning!.runOnce();
    assert.deepEqual(rspamd.learns(), { spam: before.spam + 1, ham: before.ham }, 'exactly one spam learn');
    const rows = (await t.server.store.spamLearning.list({ userId: open })).filter((r) => r.messageId === msg.id);
    assert.equal(rows.length, 1);
    assert.equal(rows[0]!.outcome, 'learned');

    // rspamd down: moving out of Junk queues ham; the attempt fails and is retried after rspamd is back.
    await rspamd.stop();
    assert.equal(await s().mail.move(open, [msg.id], 'INBOX'), 1);
    const failed = await eventually(async () => (await t.server.store.spamLearning.list({ userId: open })).find((r) => r.messageId === msg.id && r.attempts >= 1), 20_000, 'a failed attempt');
    assert.equal(failed.state, 'pending');
    assert.equal(failed.kind, 'ham');
    assert.match(failed.lastError ?? '', /unreachable/);
    await rspamd.start();
    await eventually(async () => {
      t.server.spamLearning!.kick();
      return (await t.server.store.spamLearning.list({ userId: open })).find((r) => r.messageId === msg.id && r.state === 'done');
    }, 30_000, 'learned after rspamd came back');
    assert.deepEqual(rspamd.learns(), { spam: before.spam, ham: before.ham + 1 }, 'relearned as ham once (rspamd moves it from spam to ham)');
  });

  it('marking a request as spam moves held mail to Junk and teaches spam', async () => {
    await send({ port, from: 'pest@stranger.test', to: 'screen@example.test', subject: 'pest one', text: BODY + 'pest one\n' });
    const [r] = await s().screener.spam(screen, ['pest@stranger.test']);
    assert.deepEqual(r, { sender: 'pest@stranger.test', junked: 1 });
    assert.equal((await find(screen, 'pest one'))?.mailbox, 'Junk');
    const rows = await t.server.store.spamLearning.list({ userId: screen });
    assert.equal(rows.filter((x) => x.kind === 'spam').length, 1);
  });

  it('a message whose sender Two-Way Mail authenticated is scanned without rspamd’s SPF, DKIM and DMARC checks', async () => {
    const client = createRspamdClient({ url: rspamd.url, controllerUrl: rspamd.controllerUrl, password: rspamd.password, timeoutMs: 10_000, maxSize: 1_000_000, judge: { by: 'actions' } });
    const raw = Buffer.from(`From: <someone@stranger.test>\r\nTo: <open@example.test>\r\nSubject: checks\r\nMessage-ID: <c1@stranger.test>\r\nDate: Sun, 06 Dec 2026 08:00:00 +0000\r\n\r\n${BODY}`);
    const input = { raw, envelopeFrom: 'someone@stranger.test', recipients: ['open@example.test'] };
    // Symbols of rspamd's spf, dkim and dmarc groups (its DNS is unreachable here, so they report that).
    const senderChecks = (scan: SpamScan) => (scan.status === 'scanned' ? scan.symbols.map((x) => x.name).filter((n) => /^(R_SPF_|R_DKIM_|DMARC_)/.test(n)) : ['unscanned']);
    const plain = await client.scan(input);
    assert.notDeepEqual(senderChecks(plain), [], 'without the header rspamd runs its sender checks');
    const authenticated = await client.scan({ ...input, senderAuthenticated: true });
    assert.equal(authenticated.status, 'scanned');
    assert.deepEqual(senderChecks(authenticated), []);
  });
});

describe('spam filter with rspamd down', () => {
  let t: TestServer;
  const lines: Array<Record<string, unknown>> = [];

  before(async () => {
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const l of chunk.toString().split('\n')) if (l) lines.push(JSON.parse(l) as Record<string, unknown>);
        done();
      },
    });
    // Port 9 (discard) on loopback: nothing listens, connections are refused at once.
    t = await startTestServer({ logger: pino({ level: 'warn' }, sink), extraToml: '\n[spam]\nurl = "http://127.0.0.1:9"\ntimeout_ms = 1000\n' });
    await t.server.services.accounts.add('open@example.test', 'password-1', 'open');
  });
  after(() => t?.close());

  it('accepts, marks the message unscanned, and logs at most once per minute', async () => {
    const port = t.server.smtp.port;
    for (const n of [1, 2, 3]) assert.match(await send({ port, from: `x${n}@elsewhere.test`, to: 'open@example.test', subject: `down ${n}`, text: BODY }), /^250/);
    const user = await t.server.services.accounts.get('open@example.test');
    const msgs = await t.server.services.mail.list(user.id);
    assert.equal(msgs.length, 3);
    for (const m of msgs) {
      assert.equal(m.mailbox, 'INBOX');
      const view = spamOfMessage((await t.server.services.mail.get(user.id, m.id)).raw);
      assert.equal(view?.status, 'unscanned');
      assert.equal(view?.reason, 'unreachable');
    }
    const reports = lines.filter((l) => l.msg === 'rspamd unreachable: mail is not scanned');
    assert.equal(reports.length, 1, 'one report for three unscanned messages within a minute');
  });
});
