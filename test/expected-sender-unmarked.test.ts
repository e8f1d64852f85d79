/**
 * Expected senders without the marker, declared sending domains, MARKER=REQUIRED,
 * the cap on live entries, hostile cards written with a contacts-scope app
 * password, and what that app password cannot reach (docs/protocol.md 9.3,
 * 10.2, 12.11). Real SMTP with DKIM-signed mail (sent from 127.0.0.2, which
 * SPF fails, so only the DKIM signature can authenticate it), the embedded
 * DNS server publishing DKIM/SPF/DMARC, CardDAV over HTTPS, IMAP over TLS.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ImapFlow } from 'imapflow';
import { basic, davFetch } from './helpers/carddav.ts';
import { RawImap, serverCa } from './helpers/raw-imap.ts';
import { rawMessage, send, senderDomain, startTestServer, submit, type TestServer } from './helpers/server.ts';

const shop = senderDomain('shop.test');
const mailer = senderDomain('mailer.test');
const other = senderDomain('other.test');
const USER = 'strict@example.test';
const PASS = 'strict-password-1';
const refused550 = (err: Error & { responseCode?: number; response?: string }) => err.responseCode === 550 && /^550 5\.7\.1 /.test(err.response ?? '');

describe('expected senders: unmarked mail, declared domains, limits, the contacts scope', () => {
  let t: TestServer;
  let userId: number;
  let dav: ReturnType<typeof davFetch>;
  let appPassword: string;

  before(async () => {
    t = await startTestServer({ records: [...shop.records, ...mailer.records, ...other.records] });
    userId = (await t.server.services.accounts.add(USER, PASS, 'strict')).id;
    const user = await t.server.services.accounts.get(USER);
    appPassword = (await t.server.services.accounts.addAppPassword(user, 'browser extension', 'contacts')).password;
    dav = davFetch(t);
  });
  after(async () => {
    await dav.close();
    await t.close();
  });

  /** A DKIM-signed message from 127.0.0.2 (SPF fails there: DKIM alone authenticates it). */
  const signed = async (signer: typeof shop, from: string, subject: string, extra = '') =>
    send({ port: t.server.smtp.port, from, to: USER, raw: await signer.sign(rawMessage(from, USER, subject, extra)), localAddress: '127.0.0.2' });
  const inbox = async () => (await t.server.services.mail.list(userId)).filter((m) => m.mailbox === 'INBOX').map((m) => m.subject);
  const removeAll = async () => {
    for (const c of await t.server.services.contacts.list(userId)) await t.server.store.contacts.remove(userId, c.book, c.uid);
  };
  const book = `/dav/addressbooks/${USER}/default/`;
  const put = (href: string, vcard: string, pass = appPassword) =>
    dav.fetch(`${t.server.http.url}${book}${href}`, {
      method: 'PUT',
      headers: { authorization: basic(USER, pass), 'content-type': 'text/vcard', 'if-none-match': '*' },
      body: vcard,
    });
  const expectCard = (uid: string, domain: string, params = '', until = new Date(Date.now() + 3_600_000)) => {
    const ts = until.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');
    return `BEGIN:VCARD\r\nVERSION:4.0\r\nUID:${uid}\r\nFN:${domain} (expected)\r\nX-TWOWAY-EXPECT;PURPOSE=ownership-confirmation;UNTIL=${ts};USES=3${params}:${domain}\r\nEND:VCARD\r\n`;
  };

  it('an entry without MARKER admits three DKIM-aligned unmarked messages, then strict mode refuses the fourth', async () => {
    const res = await put('shop.vcf', expectCard('shop-1', 'shop.test'));
    assert.equal(res.status, 201, await res.text());
    for (const n of [1, 2, 3]) assert.match(await signed(shop, 'no-reply@shop.test', `welcome ${n}`), /^250 /);
    assert.deepEqual(await inbox(), ['welcome 1', 'welcome 2', 'welcome 3']);
    await assert.rejects(signed(shop, 'no-reply@shop.test', 'welcome 4'), refused550);
    assert.deepEqual(await t.server.services.contacts.list(userId), [], 'the used-up card is gone');
  });

  it('unauthenticated mail (signed with the wrong key, or not at all) is refused while the entry lives', async () => {
    assert.equal((await put('shop2.vcf', expectCard('shop-2', 'shop.test'))).status, 201);
    // other.test's key over a From: of shop.test: the signature is not aligned.
    await assert.rejects(signed(other, 'no-reply@shop.test', 'forged'), refused550);
    await assert.rejects(send({ port: t.server.smtp.port, from: 'no-reply@shop.test', to: USER, subject: 'unsigned', localAddress: '127.0.0.2' }), refused550);
    const [card] = await t.server.services.contacts.list(userId);
    assert.equal(card?.entries[0]?.expect?.uses, 3, 'nothing consumed');
    await removeAll();
  });

  it('a declared sending domain (FROM) is admitted with the same uses; another domain is not', async () => {
    assert.equal((await put('decl.vcf', expectCard('decl-1', 'shop.test', ';FROM=mailer.test'))).status, 201);
    assert.match(await signed(mailer, 'accounts@mailer.test', 'via provider'), /^250 /);
    assert.equal((await inbox()).at(-1), 'via provider');
    await assert.rejects(signed(other, 'x@other.test', 'undeclared'), refused550);
    const [card] = await t.server.services.contacts.list(userId);
    assert.match(card!.vcard.replace(/\r\n /g, ''), /;USES=2;FROM=mailer\.test:shop\.test\r\n/, 'the use counted on the one property');
    await removeAll();
  });

  it('MARKER=REQUIRED admits only the marked message (twoway expect --require-marker writes it)', async () => {
    const card = await t.server.services.contacts.expect(userId, 'shop.test', { forMs: 3_600_000, uses: 3, requireMarker: true });
    assert.match(card.vcard.replace(/\r\n /g, ''), /;MARKER=REQUIRED:shop\.test\r\n/);
    await assert.rejects(signed(shop, 'no-reply@shop.test', 'unmarked'), refused550);
    assert.match(await signed(shop, 'no-reply@shop.test', 'marked', 'TWM-Purpose: ownership-confirmation\r\n'), /^250 /);
    assert.equal((await inbox()).at(-1), 'marked');
    await removeAll();
  });

  it('an entry past its time admits nothing', async () => {
    assert.equal((await put('short.vcf', expectCard('short-1', 'shop.test', '', new Date(Date.now() + 1_000)))).status, 201);
    await new Promise((r) => setTimeout(r, 2_100));
    await assert.rejects(signed(shop, 'no-reply@shop.test', 'too late'), refused550);
    await removeAll();
  });

  it('refuses hostile or malformed cards from the contacts app password with 400, storing nothing', async () => {
    const cases: Array<[string, string, RegExp]> = [
      ['public suffix', expectCard('h1', 'co.uk'), /public suffix/],
      ['private suffix', expectCard('h2', 'github.io'), /public suffix/],
      ['FROM list', expectCard('h3', 'shop.test', ';FROM=gmail.com,mailer.test'), /FROM .* not one domain/],
      ['FROM public suffix', expectCard('h4', 'shop.test', ';FROM=com'), /FROM .*public suffix/],
      ['FROM malformed', expectCard('h5', 'shop.test', ';FROM="mailer.test<script>"'), /FROM .* not one domain/],
      ['bad MARKER', expectCard('h6', 'shop.test', ';MARKER=sometimes'), /MARKER/],
      ['not a vCard', '<html><script>alert(1)</script></html>', /BEGIN:VCARD/],
      ['two cards', expectCard('h7', 'shop.test') + expectCard('h8', 'shop.test'), /second card|more than one|after END/i],
    ];
    for (const [label, vcard, why] of cases) {
      const res = await put(`${label.replace(/ /g, '-')}.vcf`, vcard);
      const body = await res.text();
      assert.equal(res.status, 400, `${label}: ${body}`);
      assert.match(body, /valid-address-data/, label);
      assert.match(body, why, label);
    }
    assert.deepEqual(await t.server.services.contacts.list(userId), [], 'nothing stored');
  });

  it('caps live entries per user: the 21st is refused with 403 and a precise body, nothing stored', async () => {
    for (let i = 0; i < 20; i++) assert.equal((await put(`cap-${i}.vcf`, expectCard(`cap-${i}`, `site${i}.test`))).status, 201);
    const res = await put('cap-20.vcf', expectCard('cap-20', 'site20.test'));
    const body = await res.text();
    assert.equal(res.status, 403, body);
    assert.match(body, /expected-sender-limit/);
    assert.match(body, /20 live X-TWOWAY-EXPECT entries already, at most 20 per user/);
    // Replacing one of the 20 is fine (it does not count against itself); an ordinary contact too.
    const replace = await dav.fetch(`${t.server.http.url}${book}cap-0.vcf`, {
      method: 'PUT',
      headers: { authorization: basic(USER, appPassword), 'content-type': 'text/vcard' },
      body: expectCard('cap-0', 'site0.test'),
    });
    assert.equal(replace.status, 204, await replace.text());
    const plain = await put('friend.vcf', 'BEGIN:VCARD\r\nVERSION:4.0\r\nUID:friend\r\nFN:Friend\r\nEMAIL:friend@other.test\r\nEND:VCARD\r\n');
    assert.equal(plain.status, 201);
    assert.equal((await t.server.services.contacts.list(userId)).length, 21);
    // The API and the CLI path share the cap.
    await assert.rejects(t.server.services.contacts.expect(userId, 'site21.test', { forMs: 60_000 }), /at most 20 per user/);
    await removeAll();
  });

  it('the contacts app password reads and writes cards and nothing else: API, IMAP, SMTP submission', async () => {
    // CardDAV: allowed (the tests above wrote with it); a read too.
    const list = await dav.fetch(`${t.server.http.url}${book}`, { method: 'PROPFIND', headers: { authorization: basic(USER, appPassword), depth: '1' } });
    assert.equal(list.status, 207);
    await list.arrayBuffer();
    // The API: no mail, no sending, no settings.
    for (const [method, path, body] of [
      ['GET', '/api/messages?mailbox=INBOX', undefined],
      ['POST', '/api/send', { to: ['x@other.test'], message: `From: ${USER}\nTo: x@other.test\nSubject: x\n\nx\n` }],
      ['PUT', '/api/me/mode', { mode: 'open' }],
      ['POST', '/api/me/app-passwords', { name: 'more', scope: 'all' }],
    ] as const) {
      const res = await dav.fetch(`${t.server.http.url}${path}`, {
        method,
        headers: { authorization: basic(USER, appPassword), ...(body ? { 'content-type': 'application/json' } : {}) },
        ...(body ? { body: JSON.stringify(body) } : {}),
      });
      assert.equal(res.status, 403, `${method} ${path}: ${await res.text()}`);
    }
    // IMAP: LOGIN and AUTHENTICATE PLAIN refused.
    const ca = serverCa(t);
    const raw = await RawImap.connect(t.server.imap!.tlsPort!, { tls: true, ca });
    assert.match(await raw.cmd('a', `LOGIN ${USER} ${appPassword}`), /a NO \[AUTHORIZATIONFAILED\]/);
    assert.match(await raw.cmd('b', `AUTHENTICATE PLAIN ${Buffer.from(`\0${USER}\0${appPassword}`).toString('base64')}`), /b NO \[AUTHORIZATIONFAILED\]/);
    await raw.cmd('c', 'LOGOUT');
    const flow = new ImapFlow({ host: '127.0.0.1', port: t.server.imap!.tlsPort!, secure: true, tls: { ca: [ca] }, auth: { user: USER, pass: appPassword }, logger: false });
    await assert.rejects(flow.connect());
    // SMTP submission: 535.
    await assert.rejects(submit({ port: t.server.submission!.port, user: USER, pass: appPassword, to: 'x@other.test', subject: 'no' }), /535 5\.7\.8/);
    // The account password still does all of it (the refusals above are the scope's).
    assert.match(await submit({ port: t.server.submission!.port, user: USER, pass: PASS, to: USER, subject: 'own' }), /^250/);
  });
});
