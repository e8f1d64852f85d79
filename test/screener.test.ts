/**
 * The Screener end to end: strangers' mail arrives over real SMTP, the
 * actions run through the services, and the next message proves the
 * decision stuck.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { RawSmtp } from './helpers/raw-smtp.ts';
import { send, senderDomain, startTestServer, type TestServer } from './helpers/server.ts';

describe('Screener', () => {
  const domains = ['carol.test', 'dave.test', 'corp.test', 'eve.test'].map((d) => senderDomain(d));
  let t: TestServer;
  let port: number;
  let screen: number;
  let strict: number;

  before(async () => {
    t = await startTestServer({ records: [...domains.flatMap((d) => d.records), { name: 'sub.corp.test', type: 'TXT', data: 'v=spf1 ip4:127.0.0.1 -all' }] });
    port = t.server.smtp.port;
    screen = (await t.server.services.accounts.add('screen@example.test', 'password-1', 'screen')).id;
    strict = (await t.server.services.accounts.add('strict@example.test', 'password-1', 'strict')).id;
  });
  after(() => t.close());

  const s = () => t.server.services;
  const mailbox = async (user: number, subject: string) => (await s().mail.list(user)).find((m) => m.subject === subject)?.mailbox;

  it('approve allows the sender and releases every held message', async () => {
    await send({ port, from: 'carol@carol.test', to: 'screen@example.test', subject: 'c1' });
    await send({ port, from: 'carol@carol.test', to: 'screen@example.test', subject: 'c2' });
    assert.equal(await mailbox(screen, 'c1'), 'Screener');
    const [result] = await s().screener.approve(screen, ['Carol@carol.test']);
    assert.deepEqual(result, { sender: 'carol@carol.test', released: 2 });
    assert.equal(await mailbox(screen, 'c1'), 'INBOX');
    assert.equal(await mailbox(screen, 'c2'), 'INBOX');
    const req = await s().screener.list(screen);
    assert.equal(req.find((r) => r.sender === 'carol@carol.test')?.status, 'approved');
    const cards = await s().contacts.list(screen);
    assert.ok(cards.some((c) => c.entries.some((e) => e.value === 'carol@carol.test' && e.action === 'allow')));
    await send({ port, from: 'carol@carol.test', to: 'screen@example.test', subject: 'c3' });
    assert.equal(await mailbox(screen, 'c3'), 'INBOX');
  });

  it('deny drops what is held; later mail is dropped in screen mode and refused in strict mode', async () => {
    await send({ port, from: 'dave@dave.test', to: 'screen@example.test', subject: 'd1' });
    const [result] = await s().screener.deny(screen, ['dave@dave.test']);
    assert.deepEqual(result, { sender: 'dave@dave.test', dropped: 1 });
    assert.equal(await mailbox(screen, 'd1'), undefined);
    assert.match(await send({ port, from: 'dave@dave.test', to: 'screen@example.test', subject: 'd2' }), /^250/);
    assert.equal(await mailbox(screen, 'd2'), undefined, 'dropped after acceptance');
    await s().contacts.block(strict, 'dave@dave.test');
    await assert.rejects(send({ port, from: 'dave@dave.test', to: 'strict@example.test', subject: 'd3' }), /550 5\.7\.1/);
  });

  it('approve-domain allows a whole domain and releases its senders, subdomains included', async () => {
    await send({ port, from: 'a@corp.test', to: 'screen@example.test', subject: 'corp a' });
    await send({ port, from: 'b@corp.test', to: 'screen@example.test', subject: 'corp b' });
    await send({ port, from: 'x@sub.corp.test', to: 'screen@example.test', subject: 'corp sub' });
    const results = await s().screener.approveDomain(screen, '@Corp.test');
    assert.deepEqual(results.map((r) => r.sender).sort(), ['a@corp.test', 'b@corp.test', 'x@sub.corp.test']);
    for (const subject of ['corp a', 'corp b', 'corp sub']) assert.equal(await mailbox(screen, subject), 'INBOX');
    await send({ port, from: 'new@corp.test', to: 'screen@example.test', subject: 'corp new' });
    assert.equal(await mailbox(screen, 'corp new'), 'INBOX');
  });

  it('clear forgets requests and drops held mail without deciding; actions work in bulk', async () => {
    await send({ port, from: 'e1@eve.test', to: 'screen@example.test', subject: 'e1' });
    await send({ port, from: 'e2@eve.test', to: 'screen@example.test', subject: 'e2' });
    const results = await s().screener.clear(screen, ['e1@eve.test', 'e2@eve.test']);
    assert.deepEqual(results, [{ sender: 'e1@eve.test', dropped: 1 }, { sender: 'e2@eve.test', dropped: 1 }]);
    assert.equal((await s().screener.list(screen)).filter((r) => r.sender.endsWith('@eve.test')).length, 0);
    await send({ port, from: 'e1@eve.test', to: 'screen@example.test', subject: 'e1 again' });
    assert.equal(await mailbox(screen, 'e1 again'), 'Screener', 'cleared, not blocked: a new request');
  });

  it('refuses actions on unknown senders and bad input without changing anything', async () => {
    await assert.rejects(s().screener.approve(screen, ['nobody@nowhere.test']), (e: Error & { kind?: string }) => e.kind === 'not-found');
    await assert.rejects(s().screener.approve(screen, ['not an address']), (e: Error & { kind?: string }) => e.kind === 'invalid');
    await assert.rejects(s().screener.approveDomain(screen, 'bad domain!'), (e: Error & { kind?: string }) => e.kind === 'invalid');
  });

  it('handles mail with neither From: nor envelope sender: deny and clear work, approve explains why not', async () => {
    const { client } = await RawSmtp.open(port);
    await client.command('EHLO anon.test');
    await client.command('MAIL FROM:<>');
    await client.command('RCPT TO:<screen@example.test>');
    await client.command('DATA');
    assert.match(await client.command('Subject: no sender\r\n\r\nbody\r\n.'), /^250/);
    client.close();
    const req = (await s().screener.list(screen)).find((r) => r.sampleSubject === 'no sender');
    assert.ok(req, 'a request was recorded');
    await assert.rejects(s().screener.approve(screen, [req.sender]), /no sender address/);
    const [result] = await s().screener.deny(screen, [req.sender]);
    assert.equal(result?.dropped, 1);
  });
});
