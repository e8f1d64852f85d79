/**
 * The IMAP server with real clients on loopback: imapflow (over implicit TLS
 * and STARTTLS, verifying the test server's certificate) for what a mail
 * client does, and a raw client for the wire details imapflow hides
 * (literals, ESEARCH, QRESYNC, BINARY, COMPRESS, LOGINDISABLED).
 */
import assert from 'node:assert/strict';
import https from 'node:https';
import { after, before, describe, it } from 'node:test';
import { ImapFlow } from 'imapflow';
import { eventually, rawMessage, send, startTestServer, type TestServer } from './helpers/server.ts';
import { RawImap, serverCa } from './helpers/raw-imap.ts';

const MULTIPART = Buffer.from(
  [
    'From: "Carol Example" <carol@sender.test>',
    'To: alice@example.test, "Team" <team@example.test>',
    'Cc: dave@sender.test',
    'Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?= and a report',
    'Date: Tue, 04 Mar 2025 10:00:00 +0000',
    'Message-ID: <multi-1@sender.test>',
    'In-Reply-To: <earlier@sender.test>',
    'MIME-Version: 1.0',
    'Content-Type: multipart/mixed; boundary="outer"',
    '',
    'preamble',
    '--outer',
    'Content-Type: multipart/alternative; boundary="inner"',
    '',
    '--inner',
    'Content-Type: text/plain; charset=utf-8',
    'Content-Transfer-Encoding: quoted-printable',
    '',
    'Hall=C3=B6chen, the numbers are attached.',
    '--inner',
    'Content-Type: text/html; charset=utf-8',
    '',
    '<p>Hallo</p>',
    '--inner--',
    '--outer',
    'Content-Type: application/octet-stream; name="data.bin"',
    'Content-Disposition: attachment; filename="data.bin"',
    'Content-Transfer-Encoding: base64',
    '',
    Buffer.from([0, 1, 2, 3, 250, 251, 252]).toString('base64'),
    '--outer',
    'Content-Type: message/rfc822',
    '',
    'From: inner@sender.test',
    'Subject: forwarded',
    '',
    'Inner body.',
    '--outer--',
    '',
  ].join('\r\n'),
);

describe('IMAP server', () => {
  let t: TestServer;
  let ca: string;
  const clients: ImapFlow[] = [];

  const client = async (user = 'alice@example.test', pass = 'alice-password-1', o: { starttls?: boolean } = {}) => {
    const c = new ImapFlow({
      host: '127.0.0.1',
      port: o.starttls ? t.server.imap!.port! : t.server.imap!.tlsPort!,
      secure: !o.starttls,
      doSTARTTLS: o.starttls ? true : undefined,
      tls: { ca: [ca] },
      auth: { user, pass },
      logger: false,
    });
    await c.connect();
    clients.push(c);
    return c;
  };
  const raw = async () => {
    const r = await RawImap.connect(t.server.imap!.tlsPort!, { tls: true, ca });
    await r.cmd('l', 'LOGIN alice@example.test alice-password-1');
    return r;
  };

  before(async () => {
    t = await startTestServer();
    ca = serverCa(t);
    await t.server.services.accounts.add('alice@example.test', 'alice-password-1', 'open');
    await t.server.services.accounts.add('bob@example.test', 'bob-password-1', 'open');
  });
  after(async () => {
    for (const c of clients) await c.logout().catch(() => c.close());
    await t?.close();
  });

  it('143 offers STARTTLS and LOGINDISABLED; LOGIN before TLS is refused; after STARTTLS (verified certificate) AUTHENTICATE PLAIN with SASL-IR works', async () => {
    const r = await RawImap.connect(t.server.imap!.port!);
    const caps = await r.cmd('a', 'CAPABILITY');
    assert.match(caps, /STARTTLS/);
    assert.match(caps, /LOGINDISABLED/);
    assert.doesNotMatch(caps, /AUTH=PLAIN/);
    assert.match(await r.cmd('b', 'LOGIN alice@example.test alice-password-1'), /b NO \[PRIVACYREQUIRED\]/);
    assert.match(await r.cmd('c', 'AUTHENTICATE PLAIN AGFsaWNlQGV4YW1wbGUudGVzdABhbGljZS1wYXNzd29yZC0x'), /c NO \[PRIVACYREQUIRED\]/);
    assert.match(await r.cmd('d', 'SELECT INBOX'), /d BAD \[CLIENTBUG\] Log in first/);
    await r.starttls(ca);
    const after = await r.cmd('e', 'CAPABILITY');
    assert.match(after, /AUTH=PLAIN/);
    assert.doesNotMatch(after, /STARTTLS|LOGINDISABLED/);
    const plain = Buffer.from('\0alice@example.test\0alice-password-1').toString('base64');
    assert.match(await r.cmd('f', `AUTHENTICATE PLAIN ${plain}`), /f OK \[CAPABILITY [^\]]*CONDSTORE[^\]]*\] Logged in/);
    r.close();
  });

  it('AUTHENTICATE PLAIN without SASL-IR, a wrong password, another user as authzid, and an app password', async () => {
    const r = await RawImap.connect(t.server.imap!.tlsPort!, { tls: true, ca });
    r.write('a AUTHENTICATE PLAIN\r\n');
    await r.waitFor(/^\+ ?\r\n/);
    await r.readLine();
    r.write(`${Buffer.from('\0alice@example.test\0wrong').toString('base64')}\r\n`);
    assert.match(await r.until('a', 15_000), /a NO \[AUTHENTICATIONFAILED\]/);
    assert.match(await r.cmd('b', `AUTHENTICATE PLAIN ${Buffer.from('bob@example.test\0alice@example.test\0alice-password-1').toString('base64')}`), /b NO \[AUTHORIZATIONFAILED\]/);
    const alice = await t.server.services.accounts.get('alice@example.test');
    const app = await t.server.services.accounts.addAppPassword(alice, 'phone');
    assert.match(await r.cmd('c', `LOGIN alice@example.test "${app.password}"`), /c OK/);
    r.close();
  });

  it('lists the six mailboxes with SPECIAL-USE; creates, renames, subscribes and deletes folders; NAMESPACE, ID, STATUS', async () => {
    const c = await client();
    const list = await c.list();
    assert.deepEqual(list.map((l) => l.path).sort(), ['Drafts', 'INBOX', 'Junk', 'Screener', 'Sent', 'Trash']);
    assert.equal(list.find((l) => l.path === 'Sent')!.specialUse, '\\Sent');
    assert.equal(list.find((l) => l.path === 'Junk')!.specialUse, '\\Junk');
    await c.mailboxCreate('Projects');
    await c.mailboxCreate('Projects/Ünïcode');
    assert.equal((await c.mailboxCreate("Projects")).created, false);
    await c.mailboxRename('Projects/Ünïcode', 'Projects/Renamed');
    await c.mailboxUnsubscribe('Projects/Renamed');
    const subs = await c.list({ statusQuery: { messages: true, unseen: true } });
    assert.ok(!subs.find((l) => l.path === 'Projects/Renamed')!.subscribed);
    assert.equal(subs.find((l) => l.path === 'Projects')!.subscribed, true);
    assert.equal(subs.find((l) => l.path === 'Projects')!.status!.messages, 0);
    assert.ok(subs.find((l) => l.path === 'Projects')!.flags.has('\\HasChildren'));
    const code = (want: string) => (e: { serverResponseCode?: string }) => e.serverResponseCode === want;
    await assert.rejects(c.mailboxDelete('Sent'), code('CANNOT'));
    await assert.rejects(c.mailboxRename('INBOX', 'Old'), code('CANNOT'));
    await c.mailboxDelete('Projects/Renamed');
    await c.mailboxDelete('Projects');
    assert.ok(!(await c.list()).some((l) => l.path.startsWith('Projects')));
    const r = await raw();
    assert.match(await r.cmd('n', 'NAMESPACE'), /\* NAMESPACE \(\("" "\/"\)\) NIL NIL/);
    assert.match(await r.cmd('i', 'ID ("name" "test")'), /\* ID \("name" "twoway"/);
    assert.match(await r.cmd('s', 'STATUS INBOX (MESSAGES UIDNEXT UIDVALIDITY UNSEEN SIZE HIGHESTMODSEQ DELETED APPENDLIMIT MAILBOXID)'), /\* STATUS "INBOX" \(MESSAGES \d+ UIDNEXT \d+ UIDVALIDITY \d+ UNSEEN \d+ SIZE \d+ HIGHESTMODSEQ \d+ DELETED \d+ APPENDLIMIT 26214400 MAILBOXID \(F\d+\)\)/);
    assert.match(await r.cmd('x', 'STATUS Nowhere (MESSAGES)'), /x NO \[NONEXISTENT\]/);
    assert.match(await r.cmd('y', 'LIST (SPECIAL-USE) "" "*" RETURN (SPECIAL-USE STATUS (MESSAGES SIZE))'), /\* LIST \([^)]*\\Sent\) "\/" "Sent"\r\n\* STATUS "Sent" \(MESSAGES \d+ SIZE \d+\)/);
    assert.match(await r.cmd('z', 'LSUB "" "*"'), /\* LSUB \([^)]*\) "\/" "INBOX"/);
    r.close();
  });

  it('APPEND to Sent and Drafts keeps flags and date; FETCH gives ENVELOPE, BODYSTRUCTURE, sections, BINARY, sizes and EMAILID', async () => {
    const c = await client();
    const date = new Date('2024-01-02T03:04:05Z');
    const res = await c.append('Sent', MULTIPART, ['\\Seen', '$Work'], date);
    assert.ok(res && res.uid === 1);
    const drafted = await c.append('Drafts', rawMessage('alice@example.test', 'x@y.test', 'draft'), ['\\Draft']);
    assert.ok(drafted && drafted.uid === 1);
    const lock = await c.getMailboxLock('Sent');
    try {
      const m = await c.fetchOne('1', { envelope: true, bodyStructure: true, flags: true, internalDate: true, size: true, uid: true, emailId: true });
      assert.ok(m);
      assert.deepEqual([...m.flags!].sort(), ['$Work', '\\Seen']);
      assert.equal((m.internalDate as Date).toISOString(), date.toISOString());
      assert.equal(m.size, MULTIPART.length);
      assert.equal(m.envelope!.subject, 'Grüße and a report');
      assert.deepEqual(m.envelope!.from, [{ name: 'Carol Example', address: 'carol@sender.test' }]);
      assert.deepEqual(m.envelope!.to!.map((a) => a.address), ['alice@example.test', 'team@example.test']);
      assert.equal(m.envelope!.inReplyTo, '<earlier@sender.test>');
      assert.match(String(m.emailId), /^M\d+$/);
      const bs = m.bodyStructure!;
      assert.equal(bs.type, 'multipart/mixed');
      assert.equal(bs.childNodes![0]!.type, 'multipart/alternative');
      assert.equal(bs.childNodes![0]!.childNodes![0]!.type, 'text/plain');
      assert.equal(bs.childNodes![0]!.childNodes![0]!.encoding, 'quoted-printable');
      assert.equal(bs.childNodes![1]!.disposition, 'attachment');
      assert.equal(bs.childNodes![2]!.type, 'message/rfc822');
      const parts = await c.fetchOne('1', { bodyParts: ['1.1', '2', '3.HEADER', '1.1.MIME'], headers: ['subject', 'from'] });
      assert.ok(parts);
      assert.equal(parts.bodyParts!.get('1.1')!.toString(), 'Hall=C3=B6chen, the numbers are attached.');
      assert.equal(parts.bodyParts!.get('2')!.toString().trim(), Buffer.from([0, 1, 2, 3, 250, 251, 252]).toString('base64'));
      assert.match(parts.bodyParts!.get('3.header')!.toString(), /^From: inner@sender\.test\r\nSubject: forwarded\r\n\r\n$/);
      assert.equal(parts.headers!.toString(), 'From: "Carol Example" <carol@sender.test>\r\nSubject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?= and a report\r\n\r\n');
      assert.match(parts.bodyParts!.get('1.1.mime')!.toString(), /^Content-Type: text\/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n$/);
      const whole = await c.fetchOne('1', { source: true });
      assert.ok(whole && whole.source!.equals(MULTIPART));
      const dl = await c.download('1', '1.1');
      const chunks: Buffer[] = [];
      for await (const ch of dl.content!) chunks.push(ch as Buffer);
      assert.equal(Buffer.concat(chunks).toString('utf8'), 'Hallöchen, the numbers are attached.');
    } finally {
      lock.release();
    }
    const r = await raw();
    await r.cmd('s', 'EXAMINE Sent');
    const bin = await r.cmd('b', 'FETCH 1 (BINARY[2] BINARY.SIZE[2] BODY.PEEK[]<0.4> RFC822.SIZE)');
    assert.match(bin, /BINARY\[2\] ~\{7\}\r\n\x00\x01\x02\x03\xfa\xfb\xfc BINARY\.SIZE\[2\] 7 BODY\[\]<0> \{4\}\r\nFrom RFC822\.SIZE \d+\)/);
    assert.match(await r.cmd('d', 'FETCH 1 (BODY[99])'), /BODY\[99\] \{0\}\r\n\)\r\nd OK/);
    assert.match(await r.cmd('e', 'FETCH 1 (BINARY[1.2.3.4.5.6.7.8.9.10.11.12.13.14.15.16.17.18.19.20.21.22.23.24.25.26.27.28.29.30.31.32.33])'), /e BAD/);
    r.close();
  });

  it('stores ENVELOPE and BODYSTRUCTURE at delivery, as structure and as wire text, not per FETCH', async () => {
    const alice = await t.server.services.accounts.get('alice@example.test');
    await send({ port: t.server.smtp.port, from: 'carol@sender.test', to: 'alice@example.test', raw: MULTIPART });
    const inbox = (await t.server.services.mail.list(alice.id, 'INBOX'))[0]!;
    const structures = await t.server.store.imap.structures(alice.id, [inbox.id]);
    assert.equal(structures.get(inbox.id)!.envelope.messageId, '<multi-1@sender.test>');
    const sqlite = (t.server.store as unknown as { s: { db: import('kysely').Kysely<import('../src/store/schema.ts').Database> } }).s.db;
    const row = await sqlite.selectFrom('messages').select(['structure', 'imap_envelope', 'imap_bodystructure']).where('id', '=', inbox.id).executeTakeFirstOrThrow();
    assert.ok(row.structure && JSON.parse(row.structure).body.parts.length === 3, 'computed at ingest');
    assert.ok(row.imap_envelope?.endsWith(' "<multi-1@sender.test>")'), 'rendered at ingest');
    assert.match(row.imap_bodystructure ?? '', /^\(\(/, 'a multipart BODYSTRUCTURE, rendered at ingest');
    // The stored wire text is what FETCH answers with: change it and FETCH shows the change.
    await sqlite
      .updateTable('messages')
      .set({ imap_envelope: '(NIL "stored, not reparsed" NIL NIL NIL NIL NIL NIL NIL "<multi-1@sender.test>")' })
      .where('id', '=', inbox.id)
      .execute();
    const c = await client();
    const lock = await c.getMailboxLock('INBOX');
    try {
      const m = await c.fetchOne(String(inbox.uid), { envelope: true }, { uid: true });
      assert.ok(m);
      assert.equal(m.envelope!.subject, 'stored, not reparsed');
    } finally {
      lock.release();
    }
  });

  it('SEARCH: RFC 9051 keys, UTF-8, OR/NOT, UID ranges; ESEARCH RETURN (MIN MAX COUNT ALL)', async () => {
    const c = await client();
    await c.mailboxCreate('Search');
    const subjects = ['alpha one', 'beta two', 'Grüße drei', 'alpha four'];
    for (const [i, s] of subjects.entries()) {
      const extra = i === 2 ? 'Content-Type: text/plain; charset=utf-8\r\n' : '';
      await c.append('Search', Buffer.from(`From: p${i}@x.test\r\nTo: alice@example.test\r\nSubject: ${i === 2 ? '=?UTF-8?B?' + Buffer.from(s).toString('base64') + '?=' : s}\r\nDate: Mon, 0${i + 1} Jan 2024 10:00:00 +0000\r\n${extra}\r\nbody ${i} ${i === 3 ? 'Zebra' : 'plain'} ${i === 2 ? 'Käse' : ''}\r\n`), i % 2 ? ['\\Seen'] : [], new Date(Date.UTC(2024, 0, i + 1, 12)));
    }
    const lock = await c.getMailboxLock('Search');
    try {
      assert.deepEqual(await c.search({ subject: 'alpha' }), [1, 4]);
      assert.deepEqual(await c.search({ subject: 'grüße' }), [3]);
      assert.deepEqual(await c.search({ body: 'käse' }), [3]);
      assert.deepEqual(await c.search({ body: 'zebra' }), [4]);
      assert.deepEqual(await c.search({ seen: true }), [2, 4]);
      assert.deepEqual(await c.search({ seen: false }), [1, 3]);
      assert.deepEqual(await c.search({ from: 'p1@' }), [2]);
      assert.deepEqual(await c.search({ or: [{ from: 'p0' }, { from: 'p3' }] }), [1, 4]);
      assert.deepEqual(await c.search({ not: { subject: 'alpha' } }), [2, 3]);
      assert.deepEqual(await c.search({ since: new Date('2024-01-03T00:00:00Z') }), [3, 4]);
      assert.deepEqual(await c.search({ sentBefore: new Date('2024-01-02T00:00:00Z') }), [1]);
      assert.deepEqual(await c.search({ uid: '2:3' }, { uid: true }), [2, 3]);
      assert.deepEqual(await c.search({ larger: 10_000 }), []);
      assert.deepEqual(await c.search({ header: { to: 'alice' } }), [1, 2, 3, 4]);
    } finally {
      lock.release();
    }
    const r = await raw();
    await r.cmd('s', 'SELECT Search');
    assert.match(await r.cmd('e1', 'SEARCH RETURN (MIN MAX COUNT ALL) SUBJECT alpha'), /\* ESEARCH \(TAG "e1"\) MIN 1 MAX 4 COUNT 2 ALL 1,4\r\n/);
    assert.match(await r.cmd('e2', 'UID SEARCH RETURN (COUNT) NOT SEEN'), /\* ESEARCH \(TAG "e2"\) UID COUNT 2\r\n/);
    assert.match(await r.cmd('e3', Buffer.from(`SEARCH CHARSET UTF-8 SUBJECT {${Buffer.byteLength('Grüße')}+}\r\nGrüße\r\n`)), /\* SEARCH 3\r\n/);
    assert.match(await r.cmd('e4', 'SEARCH CHARSET KOI8-R ALL'), /e4 NO \[BADCHARSET \(UTF-8\)\]/);
    assert.match(await r.cmd('e5', 'SEARCH 1:* NOSUCHKEY'), /e5 BAD/);
    r.close();
  });

  it('STORE flags and keywords with CONDSTORE (UNCHANGEDSINCE -> MODIFIED), FETCH CHANGEDSINCE, QRESYNC SELECT with VANISHED', async () => {
    const r = await raw();
    assert.match(await r.cmd('en', 'ENABLE QRESYNC'), /\* ENABLED QRESYNC/);
    const sel = await r.cmd('s', 'SELECT Search');
    const modseq = Number(/HIGHESTMODSEQ (\d+)/.exec(sel)![1]);
    const uidValidity = Number(/UIDVALIDITY (\d+)/.exec(sel)![1]);
    const st = await r.cmd('a', 'STORE 1 +FLAGS ($Important \\Flagged)');
    assert.match(st, /\* 1 FETCH \(FLAGS \(\$Important \\Flagged\) MODSEQ \((\d+)\)\)/);
    const m1 = Number(/MODSEQ \((\d+)\)/.exec(st)![1]);
    assert.ok(m1 > modseq);
    assert.match(await r.cmd('b', `STORE 1,2 (UNCHANGEDSINCE ${modseq}) +FLAGS (\\Answered)`), /\* 2 FETCH \(FLAGS \(\\Seen \\Answered\) MODSEQ \(\d+\)\)\r\nb OK \[MODIFIED 1\]/);
    assert.match(await r.cmd('c', `FETCH 1:* (FLAGS) (CHANGEDSINCE ${modseq})`), /^\* 1 FETCH \(FLAGS \(\$Important \\Flagged\) MODSEQ \(\d+\)\)\r\n\* 2 FETCH \(FLAGS \(\\Seen \\Answered\) MODSEQ \(\d+\)\)\r\nc OK/);
    assert.match(await r.cmd('d', 'UID STORE 2 -FLAGS.SILENT (\\Seen)'), /^\* 2 FETCH \(UID 2 MODSEQ \(\d+\)\)\r\nd OK/);
    assert.match(await r.cmd('e', 'SEARCH MODSEQ ' + m1), /\* ESEARCH|\* SEARCH/);
    // Expunge one, then a fresh session resynchronises with QRESYNC.
    await r.cmd('f', 'UID STORE 4 +FLAGS (\\Deleted)');
    assert.match(await r.cmd('g', 'UID EXPUNGE 4'), /\* VANISHED 4\r\ng OK/);
    r.close();
    const q = await raw();
    await q.cmd('en', 'ENABLE QRESYNC');
    const resync = await q.cmd('s', `SELECT Search (QRESYNC (${uidValidity} ${modseq} 1:4))`);
    assert.match(resync, /\* VANISHED \(EARLIER\) 4\r\n/);
    assert.match(resync, /\* 1 FETCH \(UID 1 FLAGS \(\$Important \\Flagged\) MODSEQ \(\d+\)\)/);
    assert.match(await q.cmd('v', `UID FETCH 1:* (FLAGS) (CHANGEDSINCE ${modseq} VANISHED)`), /\* VANISHED \(EARLIER\) 4\r\n/);
    assert.match(await q.cmd('w', 'FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED)'), /w BAD/);
    q.close();
  });

  it('COPY and MOVE answer COPYUID; EXPUNGE, CLOSE and UNSELECT', async () => {
    const c = await client();
    await c.mailboxCreate('Archive');
    await c.mailboxCreate('Moves');
    for (let i = 0; i < 3; i++) await c.append('Moves', rawMessage('x@y.test', 'alice@example.test', `m${i}`));
    const lock = await c.getMailboxLock('Moves');
    try {
      const copied = await c.messageCopy('1:2', 'Archive');
      assert.ok(copied);
      assert.deepEqual([...copied.uidMap!.entries()], [[1, 1], [2, 2]]);
      const moved = await c.messageMove('3', 'Archive');
      assert.ok(moved);
      assert.deepEqual([...moved.uidMap!.entries()], [[3, 3]]);
      assert.equal(c.mailbox ? c.mailbox.exists : 0, 2);
      await c.messageFlagsAdd('1', ['\\Deleted']);
      await c.messageDelete('2');
      assert.equal((await c.status('Moves', { messages: true })) && (await c.status('Moves', { messages: true }) as { messages: number }).messages, 0);
    } finally {
      lock.release();
    }
    const r = await raw();
    await r.cmd('s', 'SELECT Archive');
    await r.cmd('a', 'STORE 1 +FLAGS (\\Deleted)');
    assert.match(await r.cmd('m', 'MOVE 1 Nowhere'), /m NO \[TRYCREATE\]/);
    assert.match(await r.cmd('b', 'UNSELECT'), /b OK/);
    await r.cmd('s2', 'SELECT Archive');
    assert.match(await r.cmd('c', 'CLOSE'), /^c OK/);
    assert.match(await r.cmd('d', 'STATUS Archive (MESSAGES)'), /MESSAGES 2/);
    assert.match(await r.cmd('e', 'EXPUNGE'), /e BAD \[CLIENTBUG\]/);
    await r.cmd('f', 'EXAMINE Archive');
    assert.match(await r.cmd('g', 'STORE 1 +FLAGS (\\Seen)'), /g NO \[READ-ONLY\]/);
    r.close();
  });

  it('other sessions see new mail within 1 s in IDLE, and flag changes and expunges as untagged responses', async () => {
    const watcher = await RawImap.connect(t.server.imap!.tlsPort!, { tls: true, ca });
    await watcher.cmd('l', 'LOGIN bob@example.test bob-password-1');
    await watcher.cmd('s', 'SELECT INBOX');
    watcher.write('i IDLE\r\n');
    await watcher.waitFor(/\+ idling\r\n/);
    const started = Date.now();
    await send({ port: t.server.smtp.port, from: 'carol@sender.test', to: 'bob@example.test', subject: 'idle test' });
    const smtpDone = Date.now();
    await watcher.waitFor(/\* 1 EXISTS\r\n/, 5000);
    const latency = Date.now() - smtpDone;
    assert.ok(latency < 1000, `EXISTS ${latency} ms after the SMTP reply (sent in ${smtpDone - started} ms)`);
    const other = await client('bob@example.test', 'bob-password-1');
    const lock = await other.getMailboxLock('INBOX');
    try {
      await other.messageFlagsAdd('1', ['\\Flagged']);
      await watcher.waitFor(/\* 1 FETCH \(FLAGS \(\\Flagged\)\)\r\n/, 2000);
      await other.messageDelete('1');
      await watcher.waitFor(/\* 1 EXPUNGE\r\n/, 2000);
    } finally {
      lock.release();
    }
    watcher.write('DONE\r\n');
    assert.match(await watcher.until('i'), /i OK IDLE terminated/);
    watcher.close();
  });

  it('imapflow sees other sessions through its own events; NOOP delivers pending changes', async () => {
    const a = await client();
    const b = await client();
    await a.mailboxOpen('INBOX');
    await b.mailboxOpen('INBOX');
    const seen: string[] = [];
    b.on('exists', (d: { count: number }) => seen.push(`exists ${d.count}`));
    await a.append('INBOX', rawMessage('x@y.test', 'alice@example.test', 'from a'));
    await b.noop();
    await eventually(async () => seen.some((s) => s.startsWith('exists')), 3000, 'exists event');
  });

  it('COMPRESS=DEFLATE carries the session', async () => {
    const r = await raw();
    await r.compress();
    assert.match(await r.cmd('a', 'SELECT INBOX'), /a OK \[READ-WRITE\]/);
    assert.match(await r.cmd('b', 'FETCH 1 (UID RFC822.SIZE)'), /\* 1 FETCH \(UID \d+ RFC822\.SIZE \d+\)/);
    assert.match(await r.cmd('c', 'COMPRESS DEFLATE'), /c NO \[COMPRESSIONACTIVE\]/);
    r.close();
  });

  it('literals: synchronizing, LITERAL+, APPENDLIMIT ([TOOBIG]), an over-long line, and ENABLE UTF8=ACCEPT names', async () => {
    const r = await raw();
    const msg = rawMessage('x@y.test', 'alice@example.test', 'literal');
    r.write(`a APPEND INBOX (\\Seen) {${msg.length}}\r\n`);
    await r.waitFor(/\+ Ready/);
    await r.readLine();
    r.write(Buffer.concat([msg, Buffer.from('\r\n')]));
    assert.match(await r.until('a'), /a OK \[APPENDUID \d+ \d+\]/);
    assert.match(await r.cmd('b', Buffer.concat([Buffer.from(`APPEND INBOX {${msg.length}+}\r\n`), msg, Buffer.from('\r\n')])), /b OK \[APPENDUID/);
    assert.match(await r.cmd('c', 'APPEND INBOX {999999999}'), /c BAD \[TOOBIG\]/);
    assert.match(await r.cmd('d', `NOOP ${'x'.repeat(70_000)}`), /BAD \[TOOBIG\]/);
    assert.match(await r.cmd('e', 'NOOP'), /e OK/);
    await r.cmd('u', 'ENABLE UTF8=ACCEPT');
    assert.match(await r.cmd('f', 'CREATE "Café"'.replace('é', '\xc3\xa9')), /f OK/);
    assert.match(await r.cmd('g', 'LIST "" "Caf*"'), /\* LIST \([^)]*\) "\/" "Caf\xc3\xa9"/);
    r.close();
    const plain = await raw();
    assert.match(await plain.cmd('h', 'LIST "" "Caf*"'), /\* LIST \([^)]*\) "\/" "Caf&AOk-"/);
    plain.close();
  });

  it('serves the Thunderbird autoconfig document on the HTTPS listener', async () => {
    const url = new URL(`${t.server.http.url}/.well-known/autoconfig/mail/config-v1.1.xml?emailaddress=alice%40example.test`);
    const body = await new Promise<{ status: number; type: string; text: string }>((resolve, reject) => {
      https
        .get(url, { ca }, (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (d: string) => (text += d));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), text }));
        })
        .on('error', reject);
    });
    assert.equal(body.status, 200);
    assert.match(body.type, /^application\/xml/);
    assert.match(body.text, /<incomingServer type="imap">\s*<hostname>mx\.example\.test<\/hostname>\s*<port>0<\/port>\s*<socketType>SSL<\/socketType>/);
    assert.match(body.text, /<socketType>STARTTLS<\/socketType>[\s\S]*<outgoingServer type="smtp">/);
    assert.match(body.text, /<domain>example\.test<\/domain>/);
  });

  it('at most max_connections_per_user sessions per user', async () => {
    const opened: RawImap[] = [];
    let refused = '';
    for (let i = 0; i < 25 && !refused; i++) {
      const r = await RawImap.connect(t.server.imap!.tlsPort!, { tls: true, ca });
      opened.push(r);
      const res = await r.cmd('l', 'LOGIN bob@example.test bob-password-1');
      if (/l NO/.test(res)) refused = res;
    }
    assert.match(refused, /l NO \[LIMIT\]/);
    for (const r of opened) r.close();
    await eventually(async () => {
      const r = await RawImap.connect(t.server.imap!.tlsPort!, { tls: true, ca });
      const ok = /l OK/.test(await r.cmd('l', 'LOGIN bob@example.test bob-password-1'));
      r.close();
      return ok;
    }, 5000, 'a session slot after the others closed');
  });
});
