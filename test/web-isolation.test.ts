/**
 * The web app's per-user isolation battery (issue 14, "another user's
 * message, contact or request id in any URL gets 404, counted in the
 * security battery"): signed in as Bob, every URL and form of the web app
 * that names an object is aimed at one of Alice's: her message (read, body,
 * attachment, flag, move, delete, reply, forward), her Screener request
 * (preview, approve, deny, spam, bulk), her expected sender, her web
 * session and her app password. Each is a 404 that shows nothing of hers,
 * and afterwards all of Alice's state is as it was. The contacts pages'
 * own battery is in test/web-contacts.test.ts.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startTestServer, type TestServer } from './helpers/server.ts';
import { SecurityTally } from './helpers/security-tally.ts';
import { webClient } from './helpers/web-client.ts';

const PASSWORD = 'correct horse battery staple';
const ALICE = 'alice@example.test';
const BOB = 'bob@example.test';
const STRANGER = 'stranger@elsewhere.test';
/** Text only Alice's objects contain: a page showing it leaks. */
const SECRET = 'alice-private-7f3a';

describe('web app: one user never reaches another user\'s objects', () => {
  let t: TestServer;
  let bob: ReturnType<typeof webClient>;
  let aliceId: number;
  let messageId: number;
  let expectedId: number;
  let aliceSession: number;
  let appPassword: { id: number; password: string };

  before(async () => {
    t = await startTestServer();
    const alice = await t.server.services.accounts.add(ALICE, PASSWORD, 'screen');
    aliceId = alice.id;
    await t.server.services.accounts.add(BOB, PASSWORD, 'screen');
    const raw = Buffer.from(
      [
        `From: friend@example.test`,
        `To: ${ALICE}`,
        `Subject: ${SECRET} subject`,
        'MIME-Version: 1.0',
        'Content-Type: multipart/mixed; boundary="b1"',
        '',
        '--b1',
        'Content-Type: text/plain',
        '',
        `${SECRET} body`,
        '--b1',
        'Content-Type: text/plain; name="notes.txt"',
        'Content-Disposition: attachment; filename="notes.txt"',
        '',
        `${SECRET} attachment`,
        '--b1--',
        '',
      ].join('\r\n'),
    );
    const common = { userId: aliceId, flags: [], receivedAt: new Date(), firstContact: false };
    const [inbox] = await t.server.store.messages.deliver([{ ...common, mailbox: 'INBOX', raw, sender: 'friend@example.test', from: 'friend@example.test', subject: `${SECRET} subject` }]);
    messageId = inbox!.id;
    await t.server.store.messages.deliver([
      {
        ...common,
        mailbox: 'Screener',
        raw: Buffer.from(`From: ${STRANGER}\r\nSubject: ${SECRET} held\r\n\r\nhello\r\n`),
        sender: STRANGER,
        from: STRANGER,
        subject: `${SECRET} held`,
        firstContact: true,
        request: { sender: STRANGER, authDomain: null, subject: `${SECRET} held` },
      },
    ]);
    await t.server.services.contacts.expect(aliceId, 'shop.test', { forMs: 3_600_000, uses: 3 });
    expectedId = (await t.server.services.contacts.cards.expected(aliceId))[0]!.id;
    const created = await t.server.services.accounts.addAppPassword(alice, 'phone');
    appPassword = { id: created.id, password: created.password };
    // Alice signed in on the web too: her session id is what Bob tries to end.
    const aliceWeb = webClient(t, PASSWORD);
    await aliceWeb.signIn(ALICE);
    aliceSession = (await t.server.services.webSessions.list(alice))[0]!.id;
    aliceWeb.close();
    bob = webClient(t, PASSWORD);
    await bob.signIn(BOB);
  });
  after(async () => {
    bob?.close();
    await t?.close();
  });

  test("every URL and form naming one of Alice's objects is a 404 for Bob, and her state is unchanged", async (ctx) => {
    const tally = new SecurityTally('web isolation');
    // A 404 that shows nothing of hers (an error page may repeat what Bob himself typed, such as the sender).
    const refusedWith404 = (what: string, r: { status: number; text: string }) =>
      tally.expectRefused(what, r.status === 404 && !r.text.includes(SECRET) && !r.text.includes('shop.test'), `${r.status}: ${r.text.slice(0, 200)}`);

    for (const path of [`/message/${messageId}`, `/message/${messageId}/body`, `/message/${messageId}/attachment/0`, `/message/${messageId}/attachment/1`, `/compose?reply=${messageId}`, `/compose?reply=${messageId}&all=1`, `/compose?forward=${messageId}`]) {
      refusedWith404(`GET ${path}`, await bob.get(path));
    }
    refusedWith404('POST /message/:id/flag', await bob.post(`/message/${messageId}/flag`, { flag: 'flagged', on: '1' }));
    refusedWith404('POST /message/:id/move', await bob.post(`/message/${messageId}/move`, { to: 'Trash' }));
    refusedWith404('POST /message/:id/delete', await bob.post(`/message/${messageId}/delete`));
    // A reply or forward of her message sent as Bob: the form names the id; nothing is queued.
    for (const field of ['reply', 'forward']) {
      const r = await bob.post('/compose', { to: 'someone@example.net', subject: 'x', text: 'x', [field]: String(messageId) });
      refusedWith404(`POST /compose with ${field}=her message`, r);
    }

    const sender = encodeURIComponent(STRANGER);
    refusedWith404('GET /screener/preview of her request', await bob.get(`/screener/preview?sender=${sender}`));
    for (const action of ['approve', 'deny', 'spam']) refusedWith404(`POST /screener/${action} of her request`, await bob.post(`/screener/${action}`, { sender: STRANGER }));
    const bulk = await bob.post('/screener/bulk', { do: 'approve', s0: STRANGER });
    refusedWith404('POST /screener/bulk with her request', bulk);

    refusedWith404('POST /contacts/expected/:id/remove of her entry', await bob.post(`/contacts/expected/${expectedId}/remove`));
    refusedWith404('POST /sessions/end of her session', await bob.post('/sessions/end', { id: String(aliceSession) }));
    refusedWith404('POST /settings/app-passwords/revoke of hers', await bob.post('/settings/app-passwords/revoke', { id: String(appPassword.id) }));

    // Alice's state, all of it as it was.
    const msg = await t.server.services.mail.get(aliceId, messageId);
    assert.equal(msg.mailbox, 'INBOX');
    assert.deepEqual(msg.flags, []);
    assert.equal((await t.server.store.requests.get(aliceId, STRANGER))?.status, 'pending');
    assert.equal((await t.server.services.mail.list(aliceId, 'Screener')).length, 1, 'her held mail is still held');
    assert.ok((await t.server.services.contacts.cards.expected(aliceId)).some((e) => e.id === expectedId), 'her expected sender is still there');
    const alice = await t.server.services.accounts.get(ALICE);
    assert.ok((await t.server.services.webSessions.list(alice)).some((s) => s.id === aliceSession), 'her session is still open');
    await t.server.services.accounts.authenticate(ALICE, appPassword.password);
    assert.equal((await t.server.services.mail.list((await t.server.services.accounts.get(BOB)).id, 'Sent')).length, 0, 'Bob sent nothing');
    tally.report((line) => ctx.diagnostic(line));
  });
});
