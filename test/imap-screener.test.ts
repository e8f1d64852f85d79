/**
 * The Screener as an IMAP folder (docs/imap.md, "The Screener"): held SMTP
 * mail appears as it is, a Two-Way Mail contact request as a generated
 * message; moving out of the Screener decides the sender with the same
 * stored decision as `twoway requests approve|deny`. Real servers, real
 * SMTP and TWM, imapflow as the mail client.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ImapFlow } from 'imapflow';
import { startDnsServer, type EmbeddedDnsServer } from '../src/dns/embedded-server.ts';
import { commonFreePort, eventually, send, senderDomain, startTestServer, submit, type TestServer } from './helpers/server.ts';
import { createTwmLab, startDomain, type TwmLab } from './helpers/twm.ts';
import { serverCa } from './helpers/raw-imap.ts';

async function imap(t: TestServer, user: string, pass: string, host = '127.0.0.1', servername?: string): Promise<ImapFlow> {
  const c = new ImapFlow({ host, port: t.server.imap!.tlsPort!, secure: true, tls: { ca: [serverCa(t)], ...(servername ? { servername } : {}) }, auth: { user, pass }, logger: false });
  await c.connect();
  return c;
}

async function subjects(c: ImapFlow, mailbox: string): Promise<string[]> {
  const lock = await c.getMailboxLock(mailbox);
  try {
    // What a client does to look for news when it is not in IDLE.
    await c.noop();
    const out: string[] = [];
    if (c.mailbox && c.mailbox.exists > 0) for await (const m of c.fetch('1:*', { envelope: true })) out.push(m.envelope!.subject ?? '');
    return out.sort();
  } finally {
    lock.release();
  }
}

/** Sequence numbers in `mailbox` of the messages whose subject is `subject`. */
async function find(c: ImapFlow, subject: string): Promise<string> {
  const hits = await c.search({ subject });
  assert.ok(hits && hits.length > 0, `no message "${subject}"`);
  return hits.join(',');
}

describe('the Screener as an IMAP folder (SMTP)', () => {
  let t: TestServer;
  let userId: number;
  const clients: ImapFlow[] = [];
  const client = async () => {
    const c = await imap(t, 'scr@example.test', 'scr-password-1');
    clients.push(c);
    return c;
  };
  const status = async (sender: string) => (await t.server.services.screener.list(userId)).find((r) => r.sender === sender)?.status;
  const allowed = async (sender: string, action: 'allow' | 'block') =>
    (await t.server.services.contacts.list(userId)).some((c) => c.entries.some((e) => e.value === sender && e.action === action));
  const hold = (from: string, subject: string) => send({ port: t.server.smtp.port, from, to: 'scr@example.test', subject, text: `Body of ${subject}.\n` });

  before(async () => {
    // far.test publishes SPF for 127.0.0.1: its mail is authenticated, so an approval lets later mail in.
    t = await startTestServer({ records: senderDomain('far.test').records });
    userId = (await t.server.services.accounts.add('scr@example.test', 'scr-password-1', 'screen')).id;
  });
  after(async () => {
    for (const c of clients) await c.logout().catch(() => c.close());
    await t?.close();
  });

  it('held SMTP mail is in Screener as it is', async () => {
    await hold('stranger1@far.test', 'held one');
    const c = await client();
    const lock = await c.getMailboxLock('Screener');
    try {
      const m = await c.fetchOne(await find(c, 'held one'), { source: true, envelope: true });
      assert.ok(m);
      assert.equal(m.envelope!.from![0]!.address, 'stranger1@far.test');
      assert.match(m.source!.toString(), /\r\nSubject: held one\r\n[\s\S]*Body of held one\./);
    } finally {
      lock.release();
    }
    assert.deepEqual(await subjects(c, 'INBOX'), []);
  });

  it('MOVE to INBOX approves the sender: the same stored decision as `requests approve`; other held mail is released too', async () => {
    await hold('stranger1@far.test', 'held two');
    const c = await client();
    const lock = await c.getMailboxLock('Screener');
    try {
      await c.messageMove(await find(c, 'held one'), 'INBOX');
    } finally {
      lock.release();
    }
    assert.equal(await status('stranger1@far.test'), 'approved');
    assert.ok(await allowed('stranger1@far.test', 'allow'));
    assert.deepEqual(await subjects(c, 'INBOX'), ['held one', 'held two']);
    assert.deepEqual(await subjects(c, 'Screener'), []);
    await hold('stranger1@far.test', 'after approval');
    assert.ok((await subjects(c, 'INBOX')).includes('after approval'));
  });

  it('MOVE to a folder of the user approves; the moved message goes there, the rest of the held mail to INBOX', async () => {
    await hold('stranger2@far.test', 'to work');
    await hold('stranger2@far.test', 'also held');
    const c = await client();
    await c.mailboxCreate('Work');
    const lock = await c.getMailboxLock('Screener');
    try {
      await c.messageMove(await find(c, 'to work'), 'Work');
    } finally {
      lock.release();
    }
    assert.equal(await status('stranger2@far.test'), 'approved');
    assert.deepEqual(await subjects(c, 'Work'), ['to work']);
    assert.ok((await subjects(c, 'INBOX')).includes('also held'));
  });

  for (const folder of ['Junk', 'Trash']) {
    it(`MOVE to ${folder} denies the sender: blocked, the moved message in ${folder}, the rest of the held mail dropped`, async () => {
      const sender = `spam-${folder.toLowerCase()}@far.test`;
      await hold(sender, `${folder} me`);
      await hold(sender, `${folder} other`);
      const c = await client();
      const before = await subjects(c, folder);
      const lock = await c.getMailboxLock('Screener');
      try {
        await c.messageMove(await find(c, `${folder} me`), folder);
      } finally {
        lock.release();
      }
      assert.equal(await status(sender), 'denied');
      assert.ok(await allowed(sender, 'block'));
      assert.deepEqual(await subjects(c, folder), [...before, `${folder} me`].sort());
      assert.ok(!(await subjects(c, 'Screener')).includes(`${folder} other`));
      assert.ok(!(await subjects(c, 'INBOX')).some((s) => s.startsWith(folder)));
    });
  }

  it('COPY then EXPUNGE approves, like MOVE', async () => {
    await hold('stranger3@far.test', 'copy me');
    const c = await client();
    const lock = await c.getMailboxLock('Screener');
    try {
      const seq = await find(c, 'copy me');
      await c.messageCopy(seq, 'INBOX');
      await c.messageDelete(seq);
    } finally {
      lock.release();
    }
    assert.equal(await status('stranger3@far.test'), 'approved');
    assert.equal((await subjects(c, 'INBOX')).filter((s) => s === 'copy me').length, 1, 'exactly one copy');
    assert.ok(!(await subjects(c, 'Screener')).includes('copy me'));
  });

  it('two clients moving the same message at once: one decision, the message exactly once', async () => {
    await hold('stranger4@far.test', 'raced');
    const [a, b] = [await client(), await client()];
    await a.mailboxOpen('Screener');
    await b.mailboxOpen('Screener');
    const [sa, sb] = [await find(a, 'raced'), await find(b, 'raced')];
    const results = await Promise.allSettled([a.messageMove(sa, 'INBOX'), b.messageMove(sb, 'INBOX')]);
    assert.ok(results.every((r) => r.status === 'fulfilled'), JSON.stringify(results));
    assert.equal(await status('stranger4@far.test'), 'approved');
    assert.equal((await subjects(a, 'INBOX')).filter((s) => s === 'raced').length, 1);
    assert.ok(!(await subjects(b, 'Screener')).includes('raced'));
  });

  it('two clients deciding one sender differently at once: the message is in exactly one place and the sender decided', async () => {
    await hold('stranger5@far.test', 'contested');
    const [a, b] = [await client(), await client()];
    await a.mailboxOpen('Screener');
    await b.mailboxOpen('Screener');
    const [sa, sb] = [await find(a, 'contested'), await find(b, 'contested')];
    const results = await Promise.allSettled([a.messageMove(sa, 'INBOX'), b.messageMove(sb, 'Junk')]);
    assert.ok(results.every((r) => r.status === 'fulfilled'), JSON.stringify(results));
    const places = [...(await subjects(a, 'INBOX')), ...(await subjects(a, 'Junk')), ...(await subjects(a, 'Screener'))].filter((s) => s === 'contested');
    assert.equal(places.length, 1);
    assert.ok(['approved', 'denied'].includes(String(await status('stranger5@far.test'))));
  });

  it('APPEND to the Screener is refused; ordinary messages move out of it without a decision', async () => {
    const c = await client();
    await assert.rejects(c.append('Screener', Buffer.from('From: me@example.test\r\nSubject: x\r\n\r\nx\r\n')), (e: { serverResponseCode?: string }) => e.serverResponseCode === 'CANNOT');
  });
});

describe('the Screener as an IMAP folder (Two-Way Mail)', () => {
  let dns: EmbeddedDnsServer;
  let lab: TwmLab;
  let a: TestServer;
  let b: TestServer;
  let bea: number;
  const clients: ImapFlow[] = [];

  before(async () => {
    dns = await startDnsServer();
    lab = createTwmLab();
    const port = await commonFreePort(['127.0.0.2', '127.0.0.3']);
    a = await startDomain({ lab, dns, domain: 'a.test', host: '127.0.0.2', smtpPort: port });
    b = await startDomain({ lab, dns, domain: 'b.test', host: '127.0.0.3', smtpPort: port });
    for (const name of ['sam', 'rex']) await a.server.services.accounts.add(`${name}@a.test`, `${name}-password`, 'open');
    bea = (await b.server.services.accounts.add('bea@b.test', 'bea-password', 'screen')).id;
  });
  after(async () => {
    for (const c of clients) await c.logout().catch(() => c.close());
    for (const t of [a, b]) await t?.close();
    await dns?.close();
    lab?.close();
  });

  const request = (name: string, subject: string, intro: string) =>
    submit({
      port: a.server.submission!.port,
      host: '127.0.0.2',
      user: `${name}@a.test`,
      pass: `${name}-password`,
      to: 'bea@b.test',
      raw: Buffer.from(`From: ${name}@a.test\r\nTo: bea@b.test\r\nSubject: ${subject}\r\nTWM-Intro: ${intro}\r\n\r\nThe long message from ${name}.\r\n`),
    });

  it('a contact request appears in Screener as a generated message (IDLE sees it), and MOVE to INBOX fetches the real one in its place', async () => {
    const c = await imap(b, 'bea@b.test', 'bea-password', '127.0.0.3', 'mx.b.test');
    clients.push(c);
    await c.mailboxOpen('Screener');
    let exists = 0;
    c.on('exists', (d: { count: number }) => (exists = d.count));
    await request('sam', 'may I write?', 'Hi Bea, we met at the conference.');
    await eventually(async () => exists > 0, 20_000, 'EXISTS for the contact request');
    const m = await c.fetchOne('1', { envelope: true, source: true, size: true });
    assert.ok(m);
    assert.equal(m.envelope!.from![0]!.address, 'sam@a.test');
    assert.equal(m.envelope!.subject, 'Contact request: Hi Bea, we met at the conference.');
    const text = m.source!.toString();
    assert.match(text, /Introduction:\r\nHi Bea, we met at the conference\./);
    assert.match(text, /Size of the message: \d+ bytes/);
    assert.match(text, /The request expires: /);
    assert.equal((await b.server.services.mail.list(bea)).filter((x) => x.subject === 'may I write?').length, 0, 'no body before approval');
    await c.messageMove('1', 'INBOX');
    assert.equal((await b.server.services.screener.list(bea)).find((r) => r.sender === 'sam@a.test')?.status, 'approved');
    await eventually(async () => (await subjects(c, 'INBOX')).includes('may I write?'), 30_000, 'the fetched message in INBOX').catch(async (e) => {
      throw new Error(`${e}: ${JSON.stringify((await b.server.services.mail.list(bea)).map((m) => [m.mailbox, m.subject]))}`);
    });
    assert.deepEqual(await subjects(c, 'Screener'), [], 'the stand-in is gone');
    assert.ok(!(await subjects(c, 'INBOX')).some((s) => s.startsWith('Contact request')));
  });

  it('MOVE of a contact request to Trash denies the sender; nothing is fetched', async () => {
    const c = await imap(b, 'bea@b.test', 'bea-password', '127.0.0.3', 'mx.b.test');
    clients.push(c);
    await request('rex', 'buy now', 'Special offer');
    await eventually(async () => (await subjects(c, 'Screener')).includes('Contact request: Special offer'), 20_000, 'the request in Screener');
    const lock = await c.getMailboxLock('Screener');
    try {
      await c.messageMove(await find(c, 'Contact request'), 'Trash');
    } finally {
      lock.release();
    }
    assert.equal((await b.server.services.screener.list(bea)).find((r) => r.sender === 'rex@a.test')?.status, 'denied');
    assert.deepEqual(await subjects(c, 'Trash'), ['Contact request: Special offer']);
    await new Promise((r) => setTimeout(r, 1500));
    assert.ok(!(await subjects(c, 'INBOX')).includes('buy now'), 'a denied body is never fetched');
  });
});
