/**
 * Mailing lists and forwarders over Two-Way Mail (docs/protocol.md 7.6),
 * between real servers on loopback with the embedded DNS and the private CA
 * (helpers/twm.ts):
 *
 * - a.test hosts a list of our own: the twoway user dev@a.test (allowed to
 *   relay, `submission.relay_senders`) and a tiny list manager here in the
 *   test that reads the posts arriving in its INBOX and resubmits each
 *   through a.test's submission port with Sender: dev@a.test and
 *   List-Id: dev.a.test, keeping the author's From:;
 * - its members: two TWM users at b.test (one with the list in the address
 *   book: INBOX; one with only the author: a contact request for the list,
 *   not the author, no body), a plain SMTP server (smtp-server) for p.test,
 *   which gets the post by SMTP, and a local member of a.test, for whom our
 *   own submission does not authenticate the author either;
 * - a scripted foreign list and forwarder at evil.test (helpers/twm-peer.ts):
 *   a notice whose message has another Sender: fails `from-mismatch`, a
 *   `list_id` outside the signer domain is refused `wrong-domain`, and a
 *   forwarder without a list identity is matched as itself.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { SMTPServer } from 'smtp-server';
import { startDnsServer, type EmbeddedDnsServer } from '../src/dns/embedded-server.ts';
import { noticeToJson } from '../src/core/twm-schema.ts';
import { TWM_MEDIA_TYPES, TWM_PATHS } from '../src/core/twm-types.ts';
import { commonFreePort, eventually, send, senderDomain, submit, type TestServer } from './helpers/server.ts';
import { createTwmLab, dkimResults, startDomain, type TwmLab } from './helpers/twm.ts';
import { startTwmPeer, type TwmPeer } from './helpers/twm-peer.ts';

const LIST = 'dev@a.test';
const AUTHOR = 'alice@author.test';

describe('TWM mailing lists and forwarders', () => {
  let dns: EmbeddedDnsServer;
  let lab: TwmLab;
  let a: TestServer;
  let b: TestServer;
  let plain: SMTPServer;
  let peer: TwmPeer;
  /** What the plain SMTP member's server received. */
  const smtpReceived: Array<{ from: string; to: string[]; raw: string }> = [];
  const author = senderDomain('author.test');

  before(async () => {
    dns = await startDnsServer();
    lab = createTwmLab();
    const port = await commonFreePort(['127.0.0.2', '127.0.0.3', '127.0.0.4']);
    const relay = (t: string) => t.replace('[submission]\n', `[submission]\nrelay_senders = ["${LIST}"]\n`);
    a = await startDomain({ lab, dns, domain: 'a.test', host: '127.0.0.2', smtpPort: port, edit: relay });
    b = await startDomain({ lab, dns, domain: 'b.test', host: '127.0.0.3', smtpPort: port });
    plain = new SMTPServer({
      authOptional: true,
      disabledCommands: ['STARTTLS', 'AUTH'],
      onData(stream, session, cb) {
        const chunks: Buffer[] = [];
        stream.on('data', (c: Buffer) => chunks.push(c));
        stream.on('end', () => {
          smtpReceived.push({
            from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
            to: session.envelope.rcptTo.map((r) => r.address),
            raw: Buffer.concat(chunks).toString(),
          });
          cb();
        });
      },
    });
    await new Promise<void>((resolve) => plain.listen(port, '127.0.0.4', resolve));
    dns.add([
      { name: 'p.test', type: 'MX', data: { preference: 10, exchange: 'mx.p.test' } },
      { name: 'mx.p.test', type: 'A', data: '127.0.0.4' },
      ...author.records,
    ]);
    peer = await startTwmPeer({ lab, dns, domain: 'evil.test', host: '127.0.0.5' });

    await a.server.services.accounts.add(LIST, 'dev-password', 'open');
    await a.server.services.accounts.add('ann@a.test', 'ann-password', 'open');
    // A member on the list's own server, who knows the author but not the list.
    await a.server.services.accounts.add('lee@a.test', 'lee-password', 'screen');
    await a.server.services.contacts.allow((await user(a, 'lee@a.test')).id, AUTHOR);
    for (const [name, mode] of [['bea', 'screen'], ['ben', 'screen'], ['fay', 'screen'], ['olga', 'open']] as const) {
      await b.server.services.accounts.add(`${name}@b.test`, `${name}-password`, mode);
    }
    const bea = await user(b, 'bea@b.test');
    await b.server.services.contacts.put(bea.id, 'default', 'BEGIN:VCARD\r\nVERSION:4.0\r\nUID:dev-list\r\nFN:Developers\r\nX-TWOWAY-LIST:Developers <dev.a.test>\r\nEND:VCARD\r\n');
    // Ben knows the author, not the list; Fay allows the forwarder at evil.test.
    await b.server.services.contacts.allow((await user(b, 'ben@b.test')).id, AUTHOR);
    await b.server.services.contacts.allow((await user(b, 'fay@b.test')).id, 'fwd@evil.test');
  });
  after(async () => {
    for (const t of [a, b]) await t?.close();
    await peer?.close();
    await new Promise<void>((resolve) => (plain ? plain.close(() => resolve()) : resolve()));
    await dns?.close();
    lab?.close();
  });

  async function user(t: TestServer, address: string) {
    return t.server.services.accounts.get(address);
  }
  async function mail(t: TestServer, address: string, subject: string) {
    const u = await user(t, address);
    return (await t.server.services.mail.list(u.id)).find((m) => m.subject === subject);
  }
  async function rawOf(t: TestServer, address: string, id: number): Promise<string> {
    return (await t.server.services.mail.get((await user(t, address)).id, id)).raw.toString();
  }
  async function sentStatus(address: string, recipient: string) {
    for (const m of await a.server.services.sent.list(await user(a, address))) {
      const r = m.recipients.find((x) => x.recipient === recipient);
      if (r) return r;
    }
    return undefined;
  }

  /**
   * The list manager: every post in the list's INBOX goes out again to the members, through
   * submission as the list, with the author's From: kept (docs/protocol.md 7.6 rules 1 and 2).
   */
  async function fanOut(subject: string, members: string[]): Promise<void> {
    const post = await eventually(() => mail(a, LIST, subject), 20_000, 'the post in the list INBOX');
    const raw = await rawOf(a, LIST, post.id);
    const resent = Buffer.from(
      `Sender: Developers <${LIST}>\r\nList-Id: Developers <dev.a.test>\r\nList-Post: <mailto:${LIST}>\r\nPrecedence: list\r\n${raw}`,
    );
    await submit({ port: a.server.submission!.port, host: '127.0.0.2', user: LIST, pass: 'dev-password', envelopeFrom: 'dev+bounces@a.test', to: members, raw: resent });
  }

  it('fans a post out: INBOX for the member who has the list, a contact request for the list (not the author) for one who has only the author, SMTP for the plain member', async () => {
    const post = await author.sign(
      Buffer.from(`From: Alice <${AUTHOR}>\r\nTo: ${LIST}\r\nSubject: list post 1\r\nMessage-ID: <post1@author.test>\r\nDate: ${new Date().toUTCString()}\r\n\r\nHello developers.\r\n`),
    );
    await send({ port: a.server.smtp.port, host: '127.0.0.2', from: AUTHOR, to: LIST, raw: post });
    await fanOut('list post 1', ['bea@b.test', 'ben@b.test', 'carl@p.test', 'lee@a.test']);

    // The member who allows the list: the body fetched over TWM, into INBOX, as the author wrote it.
    const got = await eventually(() => mail(b, 'bea@b.test', 'list post 1'), 20_000, 'delivery to bea');
    assert.equal(got.mailbox, 'INBOX');
    assert.equal(got.firstContact, false);
    const raw = await rawOf(b, 'bea@b.test', got.id);
    assert.match(raw, /^Received: from twm\.a\.test:\d+\r\n\tby mx\.b\.test \(twoway\) with TWM id /);
    assert.match(raw, /\r\nFrom: Alice <alice@author\.test>\r\n/);
    assert.match(raw, /^Sender: Developers <dev@a\.test>\r\n/m);
    // Over TWM the list's server signs the notice, not the message: only the author's own signature is there.
    const signatures = raw.split(/\r\n(?=\S)/).filter((f) => /^DKIM-Signature:/i.test(f));
    assert.deepEqual(signatures.map((f) => /\bd=([^;\s]+)/.exec(f)?.[1]), ['author.test']);
    const bea = await eventually(async () => (await sentStatus(LIST, 'bea@b.test'))?.status === 'delivered' && sentStatus(LIST, 'bea@b.test'), 15_000, 'delivered receipt');
    assert.equal(bea!.via, 'twm');
    // The notice went as the list: from = Sender:, list_id = List-Id, signed by a.test.
    const notice = await b.server.store.twmIn.find('a.test', bea!.noticeId!);
    assert.equal(notice?.notice.from, LIST);
    assert.equal(notice?.notice.listId, 'dev.a.test');

    // The member who knows only the author: the author's entry does not apply; a contact request
    // for the list, and no body.
    const ben = await user(b, 'ben@b.test');
    const request = await eventually(async () => (await b.server.services.screener.list(ben.id)).find((r) => r.sender === LIST), 20_000, 'contact request for the list');
    assert.equal(request.authDomain, 'a.test');
    assert.equal((await b.server.services.screener.list(ben.id)).some((r) => r.sender === AUTHOR), false, 'no request for the author');
    assert.equal(await mail(b, 'ben@b.test', 'list post 1'), undefined, 'no body fetched');
    await eventually(async () => (await sentStatus(LIST, 'ben@b.test'))?.status === 'pending', 15_000, 'pending at the list');

    // The plain SMTP member: by SMTP, DKIM-signed for the list's domain, bounces to the list's bounce address.
    const smtp = await eventually(async () => smtpReceived.find((m) => m.raw.includes('Subject: list post 1')), 20_000, 'SMTP delivery to p.test');
    assert.deepEqual([smtp.from, smtp.to], ['dev+bounces@a.test', ['carl@p.test']]);
    assert.match(smtp.raw, /\r\nFrom: Alice <alice@author\.test>\r\n/);
    assert.match(smtp.raw, /^List-Id: Developers <dev\.a\.test>\r\n/m);
    // DKIM-signed at the SMTP hand-off for the list's domain (the Sender:'s), both signatures valid.
    // The only other signature is the author's own, which came with the post.
    const verified = await dkimResults(dns, smtp.raw);
    assert.deepEqual(verified.filter((r) => r.startsWith('a.test ')), ['a.test ed25519-sha256 pass', 'a.test rsa-sha256 pass']);
    assert.deepEqual(verified.map((r) => r.split(' ')[0]), ['a.test', 'a.test', 'author.test'], verified.join('; '));
    assert.equal((await sentStatus(LIST, 'carl@p.test'))?.via, 'queue');

    // The local member: our own submission never authenticates the author of a relayed message,
    // so the author's entry does not apply there either; held as the list's contact request.
    const lee = await user(a, 'lee@a.test');
    const held = await eventually(() => mail(a, 'lee@a.test', 'list post 1'), 20_000, 'local delivery to lee');
    assert.equal(held.mailbox, 'Screener');
    const leeRequests = await a.server.services.screener.list(lee.id);
    assert.deepEqual(leeRequests.map((r) => [r.sender, r.held]), [[LIST, 1]]);

    // Ben approves the list: the pending notice is fetched; the list is now his contact.
    await b.server.services.screener.approve(ben.id, [LIST]);
    const later = await eventually(() => mail(b, 'ben@b.test', 'list post 1'), 20_000, 'fetch after approval');
    assert.equal(later.mailbox, 'INBOX');
    assert.ok((await b.server.services.contacts.list(ben.id)).some((c) => c.vcard.includes(`EMAIL:${LIST}`)), 'the list became a contact, the author stayed what he was');
  });

  it('submission refuses a foreign From: unless the user may relay and names itself in Sender:', async () => {
    const message = (sender: string | null) =>
      Buffer.from(`From: ${AUTHOR}\r\n${sender ? `Sender: ${sender}\r\n` : ''}To: bea@b.test\r\nSubject: relay check\r\n\r\nHi.\r\n`);
    const refused = async (who: string, pass: string, sender: string | null) => {
      const err = await submit({ port: a.server.submission!.port, host: '127.0.0.2', user: who, pass, to: 'bea@b.test', raw: message(sender) }).then(
        () => null,
        (e: { responseCode?: number; response?: string }) => e,
      );
      assert.ok(err, `${who} with Sender: ${sender}: refused`);
      assert.equal(err.responseCode, 553);
      return err.response ?? '';
    };
    // Not a relay: a Sender: of its own does not make another author's From: acceptable.
    assert.match(await refused('ann@a.test', 'ann-password', 'ann@a.test'), /5\.7\.1 From: address rejected: alice@author\.test is not an address of ann@a\.test$/);
    // A relay must name itself.
    assert.match(await refused(LIST, 'dev-password', null), /set Sender: to dev@a\.test/);
    assert.match(await refused(LIST, 'dev-password', 'ann@a.test'), /set Sender: to dev@a\.test/);
  });

  /** A notice from the peer to b.test for a message it serves itself; returns the notice id and the answer. */
  async function peerNotice(from: string, to: string[], body: Buffer, listId?: string) {
    const id = randomBytes(16).toString('base64url');
    const created = new Date(Math.floor(Date.now() / 1000) * 1000);
    peer.bodies.set(id, { body });
    const content = noticeToJson({
      id,
      from,
      to,
      size: body.length,
      sha256: createHash('sha256').update(body).digest('hex'),
      created,
      expires: new Date(created.getTime() + 3_600_000),
      ...(listId ? { listId } : {}),
    });
    const answer = await peer.post('b.test', TWM_PATHS.notice, TWM_MEDIA_TYPES.notice, content);
    return { id, answer };
  }
  const receiptsFor = (id: string) =>
    peer.received.filter((r) => r.path === TWM_PATHS.receipt).map((r) => JSON.parse(r.body.toString()) as { id: string; results: Array<{ rcpt: string; status: string; error?: string }> }).filter((r) => r.id === id);

  it("a list_id outside the signer's domain is refused wrong-domain, and nothing is stored", async () => {
    const body = Buffer.from(`From: ${AUTHOR}\r\nSender: list@evil.test\r\nList-Id: <dev.a.test>\r\nSubject: borrowed list\r\n\r\nHi.\r\n`);
    const { id, answer } = await peerNotice('list@evil.test', ['olga@b.test'], body, 'dev.a.test');
    assert.equal(answer.status, 403);
    assert.equal((JSON.parse(answer.body.toString()) as { twm_error: string }).twm_error, 'wrong-domain');
    assert.equal(await b.server.store.twmIn.find('evil.test', id), undefined);
  });

  it("a list notice whose message's Sender: is not the notice's from fails from-mismatch: nothing stored, a failed receipt", async () => {
    const body = Buffer.from(`From: ${AUTHOR}\r\nSender: mallory@evil.test\r\nList-Id: <dev.evil.test>\r\nTo: olga@b.test\r\nSubject: wrong sender\r\n\r\nHi.\r\n`);
    const { id, answer } = await peerNotice('list@evil.test', ['olga@b.test'], body, 'dev.evil.test');
    assert.equal(answer.status, 200, answer.body.toString());
    assert.equal((JSON.parse(answer.body.toString()) as { results: Array<{ status: string }> }).results[0]!.status, 'accepted', 'open mode: fetched');
    const receipt = await eventually(async () => receiptsFor(id)[0], 20_000, 'the failed receipt');
    assert.deepEqual(receipt.results, [{ rcpt: 'olga@b.test', status: 'failed', error: 'from-mismatch' }]);
    assert.equal(await mail(b, 'olga@b.test', 'wrong sender'), undefined);
  });

  it('a forwarder without a list identity is matched as itself: INBOX where it is allowed, a request for it (not the author) elsewhere', async () => {
    const body = Buffer.from(`From: Alice <${AUTHOR}>\r\nSender: fwd@evil.test\r\nTo: fay@b.test, ben@b.test\r\nSubject: forwarded\r\n\r\nFrom Alice, via the forwarder.\r\n`);
    const { id, answer } = await peerNotice('fwd@evil.test', ['fay@b.test', 'ben@b.test'], body);
    assert.equal(answer.status, 200, answer.body.toString());
    assert.deepEqual(
      (JSON.parse(answer.body.toString()) as { results: Array<{ rcpt: string; status: string }> }).results,
      [
        { rcpt: 'fay@b.test', status: 'accepted' },
        { rcpt: 'ben@b.test', status: 'pending' },
      ],
      "Fay allows the forwarder; Ben's entry for the author does not apply",
    );
    const got = await eventually(() => mail(b, 'fay@b.test', 'forwarded'), 20_000, 'delivery to fay');
    assert.equal(got.mailbox, 'INBOX');
    assert.equal(got.firstContact, false);
    const receipt = await eventually(async () => receiptsFor(id)[0], 20_000, 'the delivered receipt');
    assert.deepEqual(receipt.results, [{ rcpt: 'fay@b.test', status: 'delivered' }]);
    const ben = await user(b, 'ben@b.test');
    assert.ok((await b.server.services.screener.list(ben.id)).some((r) => r.sender === 'fwd@evil.test' && r.authDomain === 'evil.test'));
    assert.equal(await mail(b, 'ben@b.test', 'forwarded'), undefined);
  });
});
