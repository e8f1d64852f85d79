/**
 * The spam filter's bad input and edges (issue: "Bad input"):
 *
 * - an rspamd that answers slowly, with nonsense or with an error: the
 *   timeout applies, the message is accepted unscanned, nothing is lost.
 *   rspamd itself cannot be made to misbehave, so a small HTTP server on
 *   loopback plays it (a fault-injection peer: real sockets, real SMTP);
 * - a message over `spam.max_size` is not sent to rspamd at all: delivered
 *   unscanned (reason too-large), not failed;
 * - rspamd's `greylist` action (a real private rspamd, greylisting on):
 *   451 4.7.1 over SMTP, in open and screen mode; an allowed contact is
 *   not scanned, so never greylisted.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { spamOfMessage } from '../src/core/spam.ts';
import { cli } from './helpers/cli.ts';
import { GREY_SUBJECT, startRspamd, type TestRspamd } from './helpers/rspamd.ts';
import { send, senderDomain, startTestServer, type TestServer } from './helpers/server.ts';

const BODY = 'Dear friend, the quarterly figures are attached below as promised in our earlier conversation about the garden project.\n';

describe('spam filter: a misbehaving rspamd and oversized messages', () => {
  let fake: Server;
  let t: TestServer;
  let user: number;
  let requests = 0;
  const hanging: ServerResponse[] = [];

  before(async () => {
    // What the fake rspamd does is chosen by a word in the message.
    fake = createServer((req: IncomingMessage, res: ServerResponse) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        requests++;
        const text = Buffer.concat(chunks).toString('latin1');
        if (text.includes('mode-slow')) return void hanging.push(res); // never answers
        if (text.includes('mode-garbage')) return void res.writeHead(200, { 'content-type': 'application/json' }).end('{"action": "no action", "score": ');
        if (text.includes('mode-error')) return void res.writeHead(500).end('internal error');
        if (text.includes('mode-action')) return void res.writeHead(200, { 'content-type': 'application/json' }).end('{"action":"delete everything","score":1}');
        res.writeHead(200, { 'content-type': 'application/json' }).end('{"action":"no action","score":0.5,"required_score":15,"symbols":{"R_OK":{"score":0.5}}}');
      });
    });
    await new Promise<void>((r) => fake.listen(0, '127.0.0.1', r));
    const port = (fake.address() as AddressInfo).port;
    t = await startTestServer({ extraToml: `\n[spam]\nurl = "http://127.0.0.1:${port}"\ntimeout_ms = 1000\nmax_size = 4096\n` });
    user = (await t.server.services.accounts.add('open@example.test', 'password-1', 'open')).id;
  });
  after(async () => {
    for (const res of hanging) res.destroy();
    await t?.close();
    fake.closeAllConnections();
    await new Promise((r) => fake.close(r));
  });

  const stored = async (subject: string) => {
    const m = (await t.server.services.mail.list(user)).find((x) => x.subject === subject);
    assert.ok(m, `"${subject}" stored`);
    return { ...m, raw: (await t.server.services.mail.get(user, m.id)).raw };
  };

  it('slow, malformed, failing or unknown answers: accepted unscanned with the reason, the message whole', async () => {
    const cases: Array<[mode: string, reason: string]> = [
      ['mode-slow', 'timeout'],
      ['mode-garbage', 'bad-answer'],
      ['mode-error', 'bad-answer'],
      ['mode-action', 'bad-answer'],
    ];
    for (const [mode, reason] of cases) {
      const raw = Buffer.from(`From: x@${mode}.test\r\nTo: open@example.test\r\nSubject: ${mode}\r\nMessage-ID: <${mode}@edge.test>\r\nDate: ${new Date().toUTCString()}\r\n\r\n${BODY.replace(/\n/g, '\r\n')}${mode}\r\n`);
      assert.match(await send({ port: t.server.smtp.port, from: `x@${mode}.test`, to: 'open@example.test', raw }), /^250/, mode);
      const m = await stored(mode);
      assert.equal(m.mailbox, 'INBOX', mode);
      assert.deepEqual([spamOfMessage(m.raw)?.status, spamOfMessage(m.raw)?.reason], ['unscanned', reason], mode);
      assert.ok(m.raw.subarray(m.raw.length - raw.length).equals(raw), `${mode}: the message is stored whole, below our headers`);
    }
    // A good answer still works after the bad ones.
    assert.match(await send({ port: t.server.smtp.port, from: 'y@fine.test', to: 'open@example.test', subject: 'fine', text: BODY }), /^250/);
    assert.deepEqual([spamOfMessage((await stored('fine')).raw)?.status, spamOfMessage((await stored('fine')).raw)?.score], ['no', 0.5]);
  });

  it('a message over spam.max_size is delivered unscanned without asking rspamd', async () => {
    const before = requests;
    const big = `${BODY}${'x'.repeat(76)}\n`.repeat(60);
    assert.match(await send({ port: t.server.smtp.port, from: 'z@big.test', to: 'open@example.test', subject: 'big one', text: big }), /^250/);
    const m = await stored('big one');
    assert.equal(m.mailbox, 'INBOX');
    assert.ok(m.raw.length > 4096);
    assert.deepEqual([spamOfMessage(m.raw)?.status, spamOfMessage(m.raw)?.reason], ['unscanned', 'too-large']);
    assert.equal(requests, before, 'rspamd was not asked');
  });

  it('`twoway mail show --json` shows the spam header as data', async () => {
    const m = await stored('mode-slow');
    const out = await cli(['mail', 'show', 'open@example.test', String(m.id), '--json', '--config', join(t.dir, 'twoway.toml')]);
    assert.equal(out.code, 0, out.err);
    const view = JSON.parse(out.out) as { spam: { status: string; reason: string | null } };
    assert.deepEqual([view.spam.status, view.spam.reason], ['unscanned', 'timeout']);
    const fine = await stored('fine');
    const text = await cli(['mail', 'show', 'open@example.test', String(fine.id), '--config', join(t.dir, 'twoway.toml')]);
    assert.match(text.out, /X-Spam: no; score=0\.50; required=15\.00; action="no action"/);
    assert.match(text.out, /X-Spam-Symbols: R_OK\(0\.50\)/);
  });
});

describe('spam filter: rspamd greylists', () => {
  const friend = senderDomain('friend.test');
  let rspamd: TestRspamd;
  let t: TestServer;

  before(async () => {
    rspamd = await startRspamd({ redisDb: 15, greylist: 4 });
    t = await startTestServer({ records: friend.records, extraToml: rspamd.toml() });
    for (const [a, mode] of [['open@example.test', 'open'], ['screen@example.test', 'screen']] as const) {
      const u = await t.server.services.accounts.add(a, 'password-1', mode);
      await t.server.services.contacts.allow(u.id, 'pal@friend.test');
    }
  });
  after(async () => {
    await t?.close();
    await rspamd?.close();
  });

  it('answers 451 4.7.1 in open and screen mode, stores nothing; an allowed contact is not greylisted', async () => {
    for (const rcpt of ['open@example.test', 'screen@example.test']) {
      await assert.rejects(
        send({ port: t.server.smtp.port, from: 'someone@stranger.test', to: rcpt, subject: `hello ${GREY_SUBJECT}`, text: BODY }),
        (err: Error) => /451 4\.7\.1 Greylisted/.test(err.message),
        rcpt,
      );
    }
    for (const a of ['open@example.test', 'screen@example.test']) {
      const u = await t.server.services.accounts.get(a);
      assert.deepEqual(await t.server.services.mail.list(u.id), [], `${a}: nothing stored`);
    }
    const signed = await friend.sign(
      Buffer.from(`From: pal@friend.test\r\nTo: open@example.test\r\nSubject: pal ${GREY_SUBJECT}\r\nMessage-ID: <grey1@friend.test>\r\nDate: ${new Date().toUTCString()}\r\n\r\n${BODY.replace(/\n/g, '\r\n')}`),
    );
    assert.match(await send({ port: t.server.smtp.port, from: 'pal@friend.test', to: 'open@example.test', raw: signed }), /^250/);
    const open = await t.server.services.accounts.get('open@example.test');
    assert.equal((await t.server.services.mail.list(open.id))[0]?.mailbox, 'INBOX');
  });
});
