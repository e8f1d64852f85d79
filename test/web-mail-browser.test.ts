/**
 * The web app's Mail and Sent pages in a real browser (chromium via
 * playwright-core) against a real server on loopback: an HTML mail with a
 * script and an onerror image runs nothing and makes no request to the
 * image's host (a loopback canary counts connections) until "Show images";
 * attachments download as attachments; flags, move, delete, search and key
 * paging; search finds a word only in a body as IMAP SEARCH does; another
 * user's message is a 404; and the Sent page shows each recipient's
 * timeline: one a real peer refused (with its reply), one it deferred (with
 * the reason) and one it accepted.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:net';
import type { Browser } from 'playwright-core';
import { SMTPServer } from 'smtp-server';
import { ImapFlow } from 'imapflow';
import { eventually, send, startTestServer, submit, type TestServer } from './helpers/server.ts';
import { browserSkip, checkPage, launchBrowser, newContext } from './helpers/browser.ts';

const PASSWORD = 'correct horse battery staple';
const CAROL = 'carol@example.test';
const BOB = 'bob@example.test';

async function signInMail(page: import('playwright-core').Page, base: string, address: string) {
  await page.goto(`${base}/sign-in`);
  await page.getByLabel('Address').fill(address);
  await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL(`${base}/screener`);
}

function hostileMail(canary: number, subject: string): Buffer {
  const b = 'b0undary';
  return Buffer.from(
    [
      'From: Mallory <mallory@nowhere.test>',
      `To: ${CAROL}`,
      `Subject: ${subject}`,
      `Date: ${new Date().toUTCString()}`,
      `Message-ID: <${Math.random().toString(36).slice(2)}@nowhere.test>`,
      'MIME-Version: 1.0',
      `Content-Type: multipart/mixed; boundary="${b}"`,
      '',
      `--${b}`,
      'Content-Type: text/html; charset=utf-8',
      '',
      `<p>Hello <b>there</b></p><script>alert('script ran')</script>`,
      `<img src="http://127.0.0.1:${canary}/pixel.png" onerror="alert('onerror ran')" alt="tracker">`,
      `<a href="javascript:alert('link ran')">click</a>`,
      `--${b}`,
      'Content-Type: text/html; name="<img src=x onerror=alert(9)>.html"',
      'Content-Disposition: attachment; filename="<img src=x onerror=alert(9)>.html"',
      '',
      `<script>alert('attachment ran')</script>`,
      `--${b}--`,
      '',
    ].join('\r\n'),
  );
}

describe('web app: mail and sent pages in chromium', { skip: browserSkip, timeout: 300_000 }, () => {
  let t: TestServer;
  let browser: Browser;
  let base: string;
  let carolId: number;
  let bobId: number;
  let canary: Server;
  let canaryPort = 0;
  let connections = 0;
  let peer: SMTPServer;

  before(async () => {
    canary = createServer((sock) => {
      connections++;
      sock.destroy();
    });
    await new Promise<void>((r) => canary.listen(0, '127.0.0.1', r));
    canaryPort = (canary.address() as { port: number }).port;
    // A remote MX that refuses one recipient for good and defers another.
    peer = new SMTPServer({
      authOptional: true,
      disabledCommands: ['STARTTLS', 'AUTH'],
      onRcptTo(address, _session, cb) {
        if (address.address.startsWith('nobody@')) return cb(Object.assign(new Error('5.1.1 <nobody@peer.test>: no such user here'), { responseCode: 550 }));
        if (address.address.startsWith('later@')) return cb(Object.assign(new Error('4.2.1 mailbox busy, try later'), { responseCode: 451 }));
        return cb();
      },
      onData(stream, _session, cb) {
        stream.resume();
        stream.on('end', () => cb());
      },
    });
    await new Promise<void>((r) => peer.listen(0, '127.0.0.1', r));
    const peerPort = (peer.server.address() as { port: number }).port;
    t = await startTestServer({
      deliveryPort: peerPort,
      records: [
        { name: 'peer.test', type: 'MX', data: { preference: 10, exchange: 'mx.peer.test' } },
        { name: 'mx.peer.test', type: 'A', data: '127.0.0.1' },
      ],
    });
    base = t.server.http.url;
    carolId = (await t.server.services.accounts.add(CAROL, PASSWORD, 'open')).id;
    bobId = (await t.server.services.accounts.add(BOB, PASSWORD, 'open')).id;
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
    await t?.close();
    await new Promise<void>((r) => peer?.close(() => r()));
    canary?.close();
  });

  test('HTML mail: no script, no onerror, no request to the image host until "Show images"; attachment is a download', async () => {
    await send({ port: t.server.smtp.port, from: 'mallory@nowhere.test', to: CAROL, raw: hostileMail(canaryPort, 'Hostile <b>html</b>') });
    const [msg] = await t.server.services.mail.list(carolId, 'INBOX');
    assert.ok(msg, 'delivered to the inbox (open mode)');
    const ctx = await newContext(browser);
    const page = await ctx.newPage();
    const dialogs: string[] = [];
    page.on('dialog', (d) => {
      dialogs.push(d.message());
      void d.dismiss();
    });
    try {
      await signInMail(page, base, CAROL);
      await page.goto(`${base}/mail/INBOX`);
      await page.getByRole('link', { name: 'Hostile <b>html</b>' }).click();
      await page.waitForURL(`${base}/message/${msg.id}`);
      const frame = page.frameLocator('iframe.mail-body');
      await frame.getByText('there').waitFor();
      assert.equal(await page.locator('iframe.mail-body').getAttribute('sandbox'), 'allow-popups allow-popups-to-escape-sandbox');
      await frame.getByRole('link', { name: 'click' }).click({ noWaitAfter: true }).catch(() => undefined);
      await page.waitForTimeout(500);
      assert.deepEqual(dialogs, [], 'nothing ran');
      assert.equal(connections, 0, 'no request to the image host');
      const body = await page.request.get(`${base}/message/${msg.id}/body`);
      assert.match(body.headers()['content-security-policy'] ?? '', /^default-src 'none'; img-src data:;/);
      assert.doesNotMatch(await body.text(), /<script|onerror|javascript:|127\.0\.0\.1/i);

      // The user's choice: now the image loads (the canary proves the check above could fail).
      await page.getByRole('link', { name: 'Show images' }).click();
      await eventually(async () => connections > 0, 15_000, 'the image host is contacted after "Show images"');
      assert.deepEqual(dialogs, [], 'still nothing ran');

      const link = page.getByRole('link', { name: '<img src=x onerror=alert(9)>.html' });
      const href = (await link.getAttribute('href'))!;
      const file = await page.request.get(`${base}${href}`);
      assert.equal(file.status(), 200);
      assert.match(file.headers()['content-disposition'] ?? '', /^attachment; filename="<img src=x onerror=alert\(9\)>\.html"; filename\*=UTF-8''/);
      assert.equal(file.headers()['content-type'], 'application/octet-stream');
      assert.equal(file.headers()['x-content-type-options'], 'nosniff');
      assert.match(await file.text(), /attachment ran/);
    } finally {
      await ctx.close();
    }
  });

  test("another user's message id is a 404 on every message URL", async () => {
    await send({ port: t.server.smtp.port, from: 'someone@nowhere.test', to: BOB, raw: hostileMail(canaryPort, 'for bob only') });
    const [bobs] = await t.server.services.mail.list(bobId, 'INBOX');
    const ctx = await newContext(browser);
    const page = await ctx.newPage();
    try {
      await signInMail(page, base, CAROL);
      for (const path of [`/message/${bobs!.id}`, `/message/${bobs!.id}/body`, `/message/${bobs!.id}/attachment/1`, '/message/99999999', '/message/abc', '/mail/Nope']) {
        const res = await page.request.get(`${base}${path}`);
        assert.equal(res.status(), 404, path);
        assert.doesNotMatch(await res.text(), /for bob only/);
      }
      const csrf = await page.locator('input[name="_csrf"]').first().inputValue();
      const res = await page.request.post(`${base}/message/${bobs!.id}/delete`, { form: { _csrf: csrf }, maxRedirects: 0 });
      assert.equal(res.status(), 404);
      assert.equal((await t.server.services.mail.list(bobId, 'INBOX')).length, 1, "bob's message is untouched");
    } finally {
      await ctx.close();
    }
  });

  test('flags, move, delete, search and key paging (60 messages: 50 then 10)', async () => {
    const now = Date.now();
    await t.server.store.messages.deliver(
      Array.from({ length: 60 }, (_, i) => ({
        userId: carolId,
        mailbox: 'INBOX' as const,
        raw: Buffer.from(`From: friend${i}@nowhere.test\r\nSubject: bulk ${i}\r\n\r\nbody ${i}\r\n`),
        flags: [],
        sender: `friend${i}@nowhere.test`,
        from: `friend${i}@nowhere.test`,
        subject: `bulk ${i}`,
        receivedAt: new Date(now + i * 1000),
        firstContact: false,
      })),
    );
    const ctx = await newContext(browser);
    const page = await ctx.newPage();
    try {
      await signInMail(page, base, CAROL);
      await page.goto(`${base}/mail/INBOX`);
      assert.equal(await page.locator('table.messages tbody tr').count(), 50);
      await page.getByRole('link', { name: 'bulk 59' }).waitFor();
      await page.getByRole('link', { name: 'Older' }).click();
      await page.getByRole('link', { name: 'bulk 0', exact: true }).waitFor();
      assert.equal(await page.locator('table.messages tbody tr').count(), 11, 'the 10 oldest bulk messages and the hostile one');
      assert.equal(await page.getByRole('link', { name: 'Older' }).count(), 0);

      await page.getByLabel('Search messages (text, subject, sender)').fill('BULK 4');
      await page.getByRole('button', { name: 'Search' }).click();
      assert.equal(await page.locator('table.messages tbody tr').count(), 11, 'bulk 4 and bulk 40-49');

      await page.getByRole('link', { name: 'bulk 42' }).click();
      await page.getByRole('button', { name: 'Flag', exact: true }).click();
      await page.getByRole('button', { name: 'Unflag' }).waitFor();
      const id = Number(page.url().split('/').pop());
      const m = await t.server.services.mail.get(carolId, id);
      assert.deepEqual([...m.flags].sort(), ['\\Flagged', '\\Seen']);
      await page.getByLabel('Move to').selectOption('Junk');
      await page.getByRole('button', { name: 'Move' }).click();
      await page.waitForURL(`${base}/mail/INBOX`);
      assert.equal((await t.server.services.mail.get(carolId, id)).mailbox, 'Junk');
      await page.goto(`${base}/mail/Junk`);
      await page.getByRole('link', { name: 'bulk 42' }).click();
      await page.getByRole('button', { name: 'Delete', exact: true }).click();
      await page.waitForURL(`${base}/mail/Junk`);
      assert.equal((await t.server.services.mail.get(carolId, id)).mailbox, 'Trash');
      await page.goto(`${base}/message/${id}`);
      await page.getByRole('button', { name: 'Delete for good' }).click();
      await page.waitForURL(`${base}/mail/Trash`);
      await assert.rejects(t.server.services.mail.get(carolId, id), /No message/);
    } finally {
      await ctx.close();
    }
  });

  test('search: a word only in a body (quoted-printable, split by a soft line break) is found on the Mail page and by IMAP SEARCH alike', async () => {
    const [stored] = await t.server.store.messages.deliver([
      {
        userId: carolId,
        mailbox: 'INBOX',
        raw: Buffer.from(
          'From: Dora <dora@nowhere.test>\r\nSubject: Plans for Sunday\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nMeet me by the bronze aard=\r\nvark at noon.\r\n',
        ),
        flags: [],
        sender: 'dora@nowhere.test',
        from: 'dora@nowhere.test',
        subject: 'Plans for Sunday',
        receivedAt: new Date(),
        firstContact: false,
      },
    ]);
    const ctx = await newContext(browser);
    const page = await ctx.newPage();
    try {
      await signInMail(page, base, CAROL);
      await page.goto(`${base}/mail/INBOX`);
      await page.getByLabel('Search messages (text, subject, sender)').fill('AARDVARK');
      await page.getByRole('button', { name: 'Search' }).click();
      await page.getByRole('link', { name: 'Plans for Sunday' }).waitFor();
      assert.equal(await page.locator('table.messages tbody tr').count(), 1, 'only the message whose body has the word');
      await page.getByLabel('Search messages (text, subject, sender)').fill('okapi');
      await page.getByRole('button', { name: 'Search' }).click();
      await page.getByText('No message matches.').waitFor();
    } finally {
      await ctx.close();
    }
    // The IMAP server's SEARCH finds the same message with the same word (BODY and TEXT).
    const imap = new ImapFlow({ host: '127.0.0.1', port: t.server.imap!.tlsPort!, secure: true, tls: { rejectUnauthorized: false }, auth: { user: CAROL, pass: PASSWORD }, logger: false });
    await imap.connect();
    try {
      await imap.mailboxOpen('INBOX');
      assert.deepEqual(await imap.search({ body: 'aardvark' }, { uid: true }), [stored!.uid]);
      assert.deepEqual(await imap.search({ text: 'AARDVARK' }, { uid: true }), [stored!.uid]);
      assert.deepEqual(await imap.search({ body: 'okapi' }, { uid: true }), []);
    } finally {
      await imap.logout();
    }
  });

  test('Sent: a recipient the peer refused shows "Failed" with its reply; a deferred one shows "Queued" with the last error', async () => {
    await submit({ port: t.server.submission!.port, user: CAROL, pass: PASSWORD, from: CAROL, to: ['nobody@peer.test', 'later@peer.test', 'yes@peer.test'], subject: 'Status <i>report</i>' });
    const user = await t.server.services.accounts.get(CAROL);
    const statuses = async () => new Map((await t.server.services.sent.list(user)).flatMap((m) => m.recipients.map((r) => [r.recipient, r] as const)));
    await eventually(
      async () => {
        const s = await statuses();
        return s.get('nobody@peer.test')?.status === 'failed' && s.get('yes@peer.test')?.status === 'delivered' && !!s.get('later@peer.test')?.detail;
      },
      30_000,
      'the peer answered every recipient',
    );
    const ctx = await newContext(browser);
    const page = await ctx.newPage();
    try {
      await signInMail(page, base, CAROL);
      await page.getByRole('link', { name: 'Sent' }).click();
      // services.sent knows the subject of TWM notices only; an SMTP-only message is listed by its Message-ID.
      await page.getByRole('heading', { name: /^nobody@peer\.test/ }).waitFor();
      const item = (rcpt: string) => page.locator('ul.plain > li').filter({ has: page.getByRole('heading', { name: new RegExp(`^${rcpt}`) }) });
      const history = (rcpt: string) => page.getByRole('list', { name: `History of ${rcpt}` });
      await item('nobody@peer.test').locator('.now').getByText('Failed').waitFor();
      // The timeline: every state each recipient entered, in order, with the peer's reply (the DSN text) or the deferral's reason.
      const steps = async (rcpt: string) => (await history(rcpt).locator(':scope > li > .status').allTextContents()).map((x) => x.trim());
      assert.deepEqual(await steps('nobody@peer.test'), ['Queued', 'Failed']);
      await history('nobody@peer.test').locator('li').nth(1).getByText(/no such user here/).waitFor();
      assert.deepEqual((await steps('later@peer.test')).slice(0, 2), ['Queued', 'Deferred']);
      await history('later@peer.test').locator('li').nth(1).getByText(/mailbox busy/).waitFor();
      await item('later@peer.test').locator('.now').getByText(/^Queued/).waitFor();
      assert.deepEqual(await steps('yes@peer.test'), ['Queued', 'Delivered']);
      await item('yes@peer.test').locator('.now').getByText('Delivered').waitFor();
      assert.equal(await history('yes@peer.test').locator('time').count(), 2, 'each step has its time');
    } finally {
      await ctx.close();
    }
  });

  test('axe-core finds no violations on the Mail, message and Sent pages (390 and 1280 px)', async () => {
    const [first] = await t.server.services.mail.list(carolId, 'INBOX');
    for (const width of [390, 1280]) {
      // The CSP bypass only here: axe is injected as a script the page's own policy would refuse.
      const ctx = await newContext(browser, { width, bypassCSP: true });
      const page = await ctx.newPage();
      try {
        await signInMail(page, base, CAROL);
        for (const [name, path] of [['mail', '/mail/INBOX'], ['message', `/message/${first!.id}`], ['sent', '/sent']] as const) {
          await page.goto(`${base}${path}`);
          await checkPage(page, name, width);
        }
      } finally {
        await ctx.close();
      }
    }
  });
});
