/**
 * SMTP submission (RFC 6409) end to end with nodemailer and raw sockets:
 * STARTTLS before AUTH, credentials and guessing, owned sender and From:,
 * completed headers, the Sent copy (unsigned), auto-allow, and local delivery
 * through the queue and the same ingest (so the recipient's policy applies).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { RawSmtp } from './helpers/raw-smtp.ts';
import { eventually, startTestServer, submit, type TestServer } from './helpers/server.ts';

describe('SMTP submission', () => {
  let t: TestServer;
  let port: number;
  let ann: number;
  let bob: number;

  before(async () => {
    t = await startTestServer();
    port = t.server.submission!.port;
    ann = (await t.server.services.accounts.add('ann@example.test', 'ann-password', 'screen')).id;
    bob = (await t.server.services.accounts.add('bob@example.test', 'bob-password', 'screen')).id;
  });
  after(() => t.close());

  const s = () => t.server.services;
  const find = async (user: number, subject: string) => (await s().mail.list(user)).find((m) => m.subject === subject);

  it('requires STARTTLS before AUTH and AUTH before MAIL', async () => {
    const { client, greeting } = await RawSmtp.open(port);
    assert.match(greeting, /^220 /);
    const ehlo = await client.command('EHLO c.test');
    assert.doesNotMatch(ehlo, /AUTH/, 'AUTH is not offered before STARTTLS');
    assert.match(await client.command('AUTH PLAIN ' + Buffer.from('\0ann@example.test\0ann-password').toString('base64')), /^5\d\d 5\.7\.0 /);
    assert.match(await client.command('MAIL FROM:<ann@example.test>'), /^530 5\.7\.0 /);
    client.close();
  });

  it('delivers a submitted message to a local user through the queue, with completed headers and a Sent copy, unsigned', async () => {
    const reply = await submit({ port, user: 'ann@example.test', pass: 'ann-password', to: 'bob@example.test', subject: 'from ann' });
    assert.match(reply, /^250 2\.0\.0 Ok: queued as [0-9a-f]+/);
    const sent = await find(ann, 'from ann');
    assert.equal(sent?.mailbox, 'Sent');
    const raw = (await s().mail.get(ann, sent!.id)).raw.toString();
    // DKIM is added only where a message leaves by SMTP (delivery/dkim-signing-transport.ts), not in Sent or the queue.
    assert.doesNotMatch(raw, /^DKIM-Signature:/im);
    assert.match(raw, /with ESMTPSA/);
    assert.match(raw, /^Message-ID: </im);
    // bob is in screen mode and ann is not his contact: the local message is screened like anyone's
    const got = await eventually(() => find(bob, 'from ann'), 15_000, 'local delivery');
    assert.equal(got.mailbox, 'Screener');
    assert.doesNotMatch((await s().mail.get(bob, got.id)).raw.toString(), /^DKIM-Signature:/im, 'local delivery needs no DKIM');
    // The queue records the outcome just after the copy is stored.
    await eventually(async () => (await s().queue.list()).some((e) => e.recipient === 'bob@example.test' && e.status.state === 'delivered'), 5000, 'queue state');
  });

  it('auto-allows recipients: a reply from someone ann wrote to lands in her INBOX', async () => {
    const cards = await s().contacts.list(ann);
    assert.ok(cards.some((c) => c.entries.some((e) => e.value === 'bob@example.test' && e.action === 'allow')));
    await submit({ port, user: 'bob@example.test', pass: 'bob-password', to: 'ann@example.test', subject: 'reply from bob' });
    const got = await eventually(() => find(ann, 'reply from bob'), 15_000, 'reply delivery');
    assert.equal(got.mailbox, 'INBOX');
  });

  it('refuses a sender or From: the user does not own with 553 5.7.1', async () => {
    await assert.rejects(submit({ port, user: 'ann@example.test', pass: 'ann-password', envelopeFrom: 'bob@example.test', to: 'bob@example.test' }), /553 5\.7\.1/);
    await assert.rejects(
      submit({ port, user: 'ann@example.test', pass: 'ann-password', envelopeFrom: 'ann@example.test', from: 'ceo@example.test', to: 'bob@example.test' }),
      /553 5\.7\.1 From: address rejected/,
    );
  });

  it('refuses a Sender: that is not the user\'s own: over TWM a message goes out as its Sender: (a list\'s), so it would be another user\'s', async () => {
    const before = (await s().queue.list()).length;
    const raw = (sender: string) => Buffer.from(`From: ann@example.test\r\n${sender}List-Id: <news.example.test>\r\nSubject: as bob\r\n\r\nhi\r\n`);
    const send = (sender: string) => submit({ port, user: 'ann@example.test', pass: 'ann-password', to: 'bob@example.test', raw: raw(sender) });
    await assert.rejects(send('Sender: bob@example.test\r\n'), /553 5\.7\.1 Sender: address rejected: bob@example\.test is not an address of ann@example\.test/);
    await assert.rejects(send('Sender: ann@example.test\r\nSender: bob@example.test\r\n'), /553 5\.7\.1 Sender: header rejected: 2 Sender: fields/);
    await assert.rejects(send('Sender: ann@example.test, bob@example.test\r\n'), /553 5\.7\.1 Sender: header rejected/);
    assert.equal((await s().queue.list()).length, before, 'nothing was queued');
    assert.match(await send('Sender: Ann <ann+lists@example.test>\r\n'), /^250 /, 'a subaddress of her own is hers');
  });

  it('accepts app passwords and refuses bad recipients precisely', async () => {
    const user = await s().accounts.get('ann@example.test');
    const app = await s().accounts.addAppPassword(user, 'mail client');
    assert.match(await submit({ port, user: 'ann@example.test', pass: app.password, to: 'bob@example.test', subject: 'app pw' }), /^250/);
    await assert.rejects(submit({ port, user: 'ann@example.test', pass: 'ann-password', to: 'bad..addr@example.test' }), /501 5\.1\.3/);
  });

  it('refuses oversized messages and mail loops before anything is stored', async () => {
    const before = (await s().queue.list()).length;
    const big = 'x'.repeat(26 * 1024 * 1024);
    await assert.rejects(submit({ port, user: 'ann@example.test', pass: 'ann-password', to: 'bob@example.test', text: big }), /552 5\.3\.4/);
    const loop = 'Received: from x by y; Mon, 1 Jan 2024 00:00:00 +0000\r\n'.repeat(60) + 'From: ann@example.test\r\nSubject: loop\r\n\r\nx\r\n';
    await assert.rejects(submit({ port, user: 'ann@example.test', pass: 'ann-password', to: 'bob@example.test', raw: Buffer.from(loop) }), /554 5\.4\.6/);
    assert.equal((await s().queue.list()).length, before, 'nothing was queued');
  });

  it('answers wrong passwords with 535 5.7.8 and locks out a guessing client with 454 4.7.0', async () => {
    let last = '';
    for (let i = 0; i < 6; i++) {
      last = await submit({ port, user: 'bob@example.test', pass: `guess-${i}`, to: 'ann@example.test' }).then(
        () => 'accepted',
        (e: Error) => e.message,
      );
      if (i < 5) assert.match(last, /535/);
    }
    assert.match(last, /454 4\.7\.0/);
  });
});
