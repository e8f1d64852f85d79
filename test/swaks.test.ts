/**
 * Debian's swaks as an independent SMTP client: STARTTLS, pipelining, a
 * forged allowed sender and a strict-mode refusal (the open-relay battery is
 * test/security-smtp.test.ts).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { haveSwaks, swaks } from './helpers/swaks.ts';
import { senderDomain, startTestServer, type TestServer } from './helpers/server.ts';

describe('swaks against twoway', { skip: haveSwaks ? false : 'swaks is not installed' }, () => {
  const friends = senderDomain('friends.test');
  let t: TestServer;
  let port: number;
  let screenId: number;

  before(async () => {
    t = await startTestServer({ records: friends.records });
    port = t.server.smtp.port;
    const { accounts, contacts } = t.server.services;
    const screen = await accounts.add('screen@example.test', 'password-1', 'screen');
    screenId = screen.id;
    await contacts.allow(screen.id, 'bob@friends.test');
    await accounts.add('strict@example.test', 'password-1', 'strict');
  });
  after(() => t.close());

  const mail = async () => (await t.server.services.mail.list(screenId)).sort((a, b) => b.id - a.id);

  it('delivers over STARTTLS with pipelining to the INBOX of an allowed, authenticated sender', async () => {
    const r = await swaks(port, ['--tls', '--pipeline', '--from', 'bob@friends.test', '--to', 'screen@example.test', '--helo', 'friends.test', '--header', 'Subject: via swaks']);
    assert.equal(r.code, 0, r.out);
    assert.ok(r.replies.some((l) => /^220 .*TLS/i.test(l) || /^220 2\.0\.0/.test(l)), r.out);
    assert.ok(r.replies.some((l) => /^250 2\.0\.0 Ok: queued as/.test(l)), r.out);
    const [m] = await mail();
    assert.equal(m?.subject, 'via swaks');
    assert.equal(m?.mailbox, 'INBOX');
  });

  // The relay variants are counted in test/security-smtp.test.ts.

  it('screens a forged allowed sender (SPF fails from 127.0.0.2)', async () => {
    const r = await swaks(port, ['--local-interface', '127.0.0.2', '--from', 'bob@friends.test', '--to', 'screen@example.test', '--header', 'Subject: forged via swaks']);
    assert.equal(r.code, 0, r.out);
    const [m] = await mail();
    assert.equal(m?.subject, 'forged via swaks');
    assert.equal(m?.mailbox, 'Screener');
  });

  it('refuses a stranger for a strict-mode user at end of DATA', async () => {
    const r = await swaks(port, ['--from', 'carol@elsewhere.test', '--to', 'strict@example.test']);
    assert.notEqual(r.code, 0);
    assert.ok(r.replies.some((l) => /^550 5\.7\.1 /.test(l)), r.out);
  });
});
