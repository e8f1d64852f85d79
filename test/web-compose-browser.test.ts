/**
 * Compose, reply and forward in a real browser (chromium via playwright-core)
 * against real servers on loopback: a message written in the page reaches a
 * real SMTP peer (found by MX) through the outbound service and shows on the
 * Sent page; a reply carries In-Reply-To and References; a forward carries
 * the original as message/rfc822; hostile subjects and names in the prefill
 * run nothing; a post without the CSRF token is 403; bad input gets the form
 * back with nothing sent; axe finds nothing on the compose page at 390 and
 * 1280 px. Then two Two-Way Mail servers: a recipient who does not know the
 * sender goes from pending (with the introduction typed in the page) to
 * delivered on the Sent page.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Browser, Page } from 'playwright-core';
import { SMTPServer } from 'smtp-server';
import { startDnsServer, type EmbeddedDnsServer } from '../src/dns/embedded-server.ts';
import { commonFreePort, eventually, send, startTestServer, type TestServer } from './helpers/server.ts';
import { browserSkip, checkPage, launchBrowser, newContext, signIn } from './helpers/browser.ts';
import { createTwmLab, startDomain, type TwmLab } from './helpers/twm.ts';

const PASSWORD = 'correct horse battery staple';
const CAROL = 'carol@example.test';

/** Every dialog, page error and console message of a page: a script that runs leaves a trace here. */
function watch(page: Page): string[] {
  const seen: string[] = [];
  page.on('dialog', (d) => {
    seen.push(`dialog: ${d.message()}`);
    void d.dismiss();
  });
  page.on('pageerror', (e) => seen.push(`pageerror: ${e.message}`));
  // A failed load is named by its response below, with its URL.
  page.on('console', (m) => {
    if (!m.text().startsWith('Failed to load resource')) seen.push(`console: ${m.text()}`);
  });
  // The browser's own favicon probe is the one request allowed to fail.
  page.on('response', (r) => {
    if (r.status() >= 400 && !r.url().endsWith('/favicon.ico')) seen.push(`response ${r.status()}: ${r.url()}`);
  });
  return seen;
}

describe('web app: compose, reply and forward in chromium', { skip: browserSkip, timeout: 300_000 }, () => {
  let t: TestServer;
  let browser: Browser;
  let base: string;
  let carolId: number;
  let peer: SMTPServer;
  /** What the peer received: envelope recipients and the raw message. */
  const received: Array<{ to: string[]; raw: string }> = [];

  const sentCount = async () => (await t.server.services.mail.list(carolId, 'Sent')).length;
  const queued = async () => (await t.server.store.queue.list()).length;

  before(async () => {
    peer = new SMTPServer({
      authOptional: true,
      disabledCommands: ['STARTTLS', 'AUTH'],
      onData(stream, session, cb) {
        const chunks: Buffer[] = [];
        stream.on('data', (c: Buffer) => chunks.push(c));
        stream.on('end', () => {
          received.push({ to: session.envelope.rcptTo.map((r) => r.address), raw: Buffer.concat(chunks).toString('utf8') });
          cb();
        });
      },
    });
    await new Promise<void>((r) => peer.listen(0, '127.0.0.1', r));
    t = await startTestServer({
      deliveryPort: (peer.server.address() as { port: number }).port,
      records: [
        { name: 'peer.test', type: 'MX', data: { preference: 10, exchange: 'mx.peer.test' } },
        { name: 'mx.peer.test', type: 'A', data: '127.0.0.1' },
      ],
    });
    base = t.server.http.url;
    carolId = (await t.server.services.accounts.add(CAROL, PASSWORD, 'open')).id;
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
    await t?.close();
    await new Promise<void>((r) => peer?.close(() => r()));
  });

  const receivedWith = (subject: string) => eventually(async () => received.find((m) => m.raw.includes(subject)), 30_000, `the peer receives "${subject}"`);

  test('compose and send to an SMTP peer: the introduction field for a new address, the Sent page, the peer has it', async () => {
    const ctx = await newContext(browser);
    const page = await ctx.newPage();
    const traces = watch(page);
    try {
      await signIn(page, base, CAROL, PASSWORD);
      await page.getByRole('link', { name: 'Compose' }).click();
      await page.waitForURL(`${base}/compose`);
      // No recipient yet: the introduction is offered.
      await page.getByLabel('Introduction (optional)').waitFor();
      await page.getByLabel('To', { exact: true }).fill('Yves Peer <yes@peer.test>');
      // htmx asks again once the recipients change: still a stranger, named.
      await page.locator('#intro').getByText('yes@peer.test', { exact: true }).waitFor();
      await page.getByLabel('Subject').fill('Hello from the web, ünïcode');
      await page.getByLabel('Message').fill('First line.\nSecond line with ü.\n');
      await page.getByRole('button', { name: 'Send' }).click();
      await page.waitForURL(`${base}/sent`);
      await page.getByRole('heading', { name: /^yes@peer\.test/ }).waitFor();

      const got = await receivedWith('Subject: =?UTF-8?Q?Hello_from_the_web');
      assert.deepEqual(got.to, ['yes@peer.test']);
      assert.match(got.raw, /^DKIM-Signature: /m, 'signed at the SMTP hand-off');
      assert.match(got.raw, /^From: carol@example\.test\r$/m);
      assert.match(got.raw, /^To: Yves Peer <yes@peer\.test>\r$/m);
      assert.match(got.raw, /Second line with =C3=BC\./);
      assert.doesNotMatch(got.raw, /TWM-Intro/i, 'no introduction was typed');
      await eventually(
        async () => {
          await page.reload();
          return (await page.locator('ul.plain > li').filter({ hasText: 'yes@peer.test' }).getByText('Delivered').count()) > 0;
        },
        30_000,
        'Delivered on the Sent page',
      );
      // The same outbound path as SMTP submission: a copy in Sent, and the recipient is now a contact.
      const [copy] = await t.server.services.mail.list(carolId, 'Sent');
      assert.equal(copy?.subject, 'Hello from the web, ünïcode');
      assert.ok(await t.server.services.contacts.isContact(carolId, 'yes@peer.test'));

      // Writing to a contact: no introduction field (htmx replaces it as the address is typed).
      await page.getByRole('link', { name: 'Compose' }).click();
      await page.getByLabel('To', { exact: true }).fill('yes@peer.test');
      await page.getByLabel('Subject').click();
      await page.waitForFunction(() => document.querySelector('#intro textarea') === null);
      assert.equal(await page.locator('#intro input[type="hidden"][name="intro"]').count(), 1);
      assert.deepEqual(traces, []);
    } finally {
      await ctx.close();
    }
  });

  test('text typed in the introduction while its update is on the way is kept, through a contact and back', async () => {
    const ctx = await newContext(browser);
    const page = await ctx.newPage();
    try {
      await signIn(page, base, CAROL, PASSWORD);
      await t.server.services.contacts.allow(carolId, 'known@peer.test');
      await page.goto(`${base}/compose`);
      // Hold the field's update until the text is typed: the order a slow answer gives.
      let release = (): void => undefined;
      const held = new Promise<void>((resolve) => (release = resolve));
      let asked = (): void => undefined;
      const requested = new Promise<void>((resolve) => (asked = resolve));
      await page.route(
        (url) => url.pathname === '/compose/intro',
        async (route) => {
          asked();
          await held;
          await route.continue();
        },
      );
      await page.getByLabel('To', { exact: true }).fill('new3@peer.test');
      await page.getByLabel('Subject').click();
      await requested;
      await page.getByLabel('Introduction (optional)').fill('typed meanwhile');
      release();
      await page.locator('#intro').getByText('new3@peer.test', { exact: true }).waitFor();
      assert.equal(await page.getByLabel('Introduction (optional)').inputValue(), 'typed meanwhile', 'the answer did not put back the text it was asked with');
      // Only a contact: the field gives way to a hidden input that keeps the text; a stranger again brings it back.
      await page.getByLabel('To', { exact: true }).fill('known@peer.test');
      await page.getByLabel('Subject').click();
      await page.waitForFunction(() => document.querySelector('#intro textarea') === null);
      await page.getByLabel('To', { exact: true }).fill('new4@peer.test');
      await page.getByLabel('Subject').click();
      await page.locator('#intro').getByText('new4@peer.test', { exact: true }).waitFor();
      assert.equal(await page.getByLabel('Introduction (optional)').inputValue(), 'typed meanwhile');
    } finally {
      await ctx.close();
    }
  });

  test('reply: To and "Re:" filled, the original quoted, In-Reply-To and References threaded', async () => {
    const raw = Buffer.from(
      [
        'From: Mo Peer <mo@peer.test>',
        `To: ${CAROL}, other@peer.test`,
        'Subject: Lunch on Friday?',
        `Date: ${new Date().toUTCString()}`,
        'Message-ID: <second.123@peer.test>',
        'In-Reply-To: <root.1@peer.test>',
        'References: <root.1@peer.test>',
        '',
        'Shall we meet at noon?',
        '',
      ].join('\r\n'),
    );
    await send({ port: t.server.smtp.port, from: 'mo@peer.test', to: CAROL, raw });
    const msg = await eventually(async () => (await t.server.services.mail.list(carolId, 'INBOX')).find((m) => m.subject === 'Lunch on Friday?'), 15_000, 'the original');
    const ctx = await newContext(browser);
    const page = await ctx.newPage();
    try {
      await signIn(page, base, CAROL, PASSWORD);
      await page.goto(`${base}/message/${msg.id}`);
      await page.getByRole('link', { name: 'Reply all' }).click();
      assert.equal(await page.getByLabel('Cc', { exact: true }).inputValue(), 'other@peer.test', 'reply all: the other recipient, not carol');
      await page.goBack();
      await page.getByRole('link', { name: 'Reply', exact: true }).click();
      await page.waitForURL(`${base}/compose?reply=${msg.id}`);
      assert.equal(await page.getByLabel('To', { exact: true }).inputValue(), 'Mo Peer <mo@peer.test>');
      assert.equal(await page.getByLabel('Cc', { exact: true }).inputValue(), '');
      assert.equal(await page.getByLabel('Subject').inputValue(), 'Re: Lunch on Friday?');
      const quoted = await page.getByLabel('Message').inputValue();
      assert.match(quoted, /wrote:\n> Shall we meet at noon\?/);
      await page.getByLabel('Message').fill(`Yes, noon is fine.\n${quoted}`);
      await page.getByRole('button', { name: 'Send' }).click();
      await page.waitForURL(`${base}/sent`);
      const got = await receivedWith('Subject: Re: Lunch on Friday?');
      assert.deepEqual(got.to, ['mo@peer.test']);
      assert.match(got.raw, /^In-Reply-To: <second\.123@peer\.test>\r$/m);
      assert.match(got.raw, /^References: <root\.1@peer\.test> <second\.123@peer\.test>\r$/m);
      assert.match(got.raw, /^> Shall we meet at noon\?\r$/m);
    } finally {
      await ctx.close();
    }
  });

  test('hostile subject and name in the reply and forward prefill run nothing; a forward carries the original whole', async () => {
    const subject = `<script>alert('subject')</script>"><img src=x onerror=alert('subject-img')>`;
    const raw = Buffer.from(
      [
        `From: "<img src=x onerror=alert('name')>" <evil@peer.test>`,
        `To: ${CAROL}`,
        `Subject: ${subject}`,
        `Date: ${new Date().toUTCString()}`,
        'Message-ID: <evil.1@peer.test>',
        'Content-Type: text/plain; charset=utf-8',
        '',
        `</textarea><script>alert('body')</script><img src=x onerror=alert('body-img')>`,
        '',
      ].join('\r\n'),
    );
    await send({ port: t.server.smtp.port, from: 'evil@peer.test', to: CAROL, raw });
    const msg = await eventually(async () => (await t.server.services.mail.list(carolId, 'INBOX')).find((m) => m.subject === subject), 15_000, 'the hostile mail');
    const ctx = await newContext(browser);
    const page = await ctx.newPage();
    const traces = watch(page);
    try {
      await signIn(page, base, CAROL, PASSWORD);
      await page.goto(`${base}/compose?reply=${msg.id}&all=1`);
      assert.equal(await page.getByLabel('Subject').inputValue(), `Re: ${subject}`);
      assert.equal(await page.getByLabel('To', { exact: true }).inputValue(), `"<img src=x onerror=alert('name')>" <evil@peer.test>`);
      const text = await page.getByLabel('Message').inputValue();
      assert.match(text, /^> <\/textarea><script>alert\('body'\)<\/script>/m, 'the body is text in the text area');
      assert.match(text, /, "<img src=x onerror=alert\('name'\)>" <evil@peer\.test> wrote:/);
      assert.equal(await page.locator('img').count(), 0, 'no element came out of the prefill');
      assert.equal(await page.locator('script:not([src])').count(), 0);

      await page.goto(`${base}/message/${msg.id}`);
      await page.getByRole('link', { name: 'Forward' }).click();
      await page.waitForURL(`${base}/compose?forward=${msg.id}`);
      assert.equal(await page.getByLabel('Subject').inputValue(), `Fwd: ${subject}`);
      await page.locator('p.notice').getByText(subject).waitFor();
      assert.equal(await page.locator('img').count(), 0);
      await page.getByLabel('To', { exact: true }).fill('yes@peer.test');
      await page.getByLabel('Message').fill('See below.');
      await page.getByRole('button', { name: 'Send' }).click();
      await page.waitForURL(`${base}/sent`);
      await page.waitForTimeout(300);
      assert.deepEqual(traces, [], 'no dialog, error or console message');

      const got = await receivedWith('evil.1@peer.test');
      assert.match(got.raw, /^Subject: =\?UTF-8\?Q\?Fwd=3A_=3Cscript=3E/m);
      assert.match(got.raw, /Content-Type: message\/rfc822/);
      assert.match(got.raw, /^Message-ID: <evil\.1@peer\.test>\r$/m, 'the original, whole, inside');
      assert.match(got.raw, /^<\/textarea><script>alert\('body'\)<\/script>/m);
    } finally {
      await ctx.close();
    }
  });

  test('without JavaScript: the introduction is decided when the page is made, and the form posts and redirects', async () => {
    await send({ port: t.server.smtp.port, from: 'nojs@peer.test', to: CAROL, subject: 'From a stranger', text: 'Hello?\n' });
    const stranger = await eventually(async () => (await t.server.services.mail.list(carolId, 'INBOX')).find((m) => m.subject === 'From a stranger'), 15_000, 'the mail');
    const fromContact = (await t.server.services.mail.list(carolId, 'INBOX')).find((m) => m.subject === 'Lunch on Friday?');
    assert.ok(fromContact && (await t.server.services.contacts.isContact(carolId, 'mo@peer.test')), 'mo became a contact by the reply above');
    const ctx = await browser.newContext({ ignoreHTTPSErrors: true, javaScriptEnabled: false });
    const page = await ctx.newPage();
    try {
      await signIn(page, base, CAROL, PASSWORD);
      await page.goto(`${base}/compose?reply=${fromContact.id}`);
      assert.equal(await page.getByLabel('Introduction (optional)').count(), 0, 'a reply to a contact: no introduction');
      await page.goto(`${base}/compose?reply=${stranger.id}`);
      await page.getByLabel('Introduction (optional)').fill('We have not met; you wrote to me first.');
      await page.getByRole('button', { name: 'Send' }).click();
      await page.waitForURL(`${base}/sent`);
      const got = await receivedWith('Subject: Re: From a stranger');
      assert.deepEqual(got.to, ['nojs@peer.test']);
      assert.match(got.raw, /^Twm-Intro: We have not met; you wrote to me first\.\r$/im, 'the introduction goes along to a new address');
    } finally {
      await ctx.close();
    }
  });

  test('a post without the CSRF token (or with a wrong one) is 403 and sends nothing', async () => {
    const ctx = await newContext(browser);
    const page = await ctx.newPage();
    try {
      await signIn(page, base, CAROL, PASSWORD);
      const before = { sent: await sentCount(), queued: await queued() };
      for (const extra of [{}, { _csrf: 'not-the-token' }] as Array<Record<string, string>>) {
        const res = await page.request.post(`${base}/compose`, { form: { to: 'yes@peer.test', subject: 'forged', text: 'forged', ...extra }, maxRedirects: 0 });
        assert.equal(res.status(), 403);
      }
      // The same form with the session's token goes through: the 403 above was the token, nothing else.
      await page.goto(`${base}/compose`);
      const csrf = await page.locator('form.compose input[name="_csrf"]').inputValue();
      const ok = await page.request.post(`${base}/compose`, { form: { to: 'yes@peer.test', subject: 'with token', text: 'fine', _csrf: csrf }, maxRedirects: 0 });
      assert.equal(ok.status(), 303);
      assert.equal(ok.headers().location, '/sent');
      assert.equal(await sentCount(), before.sent + 1);
      assert.equal(await queued(), before.queued + 1);
      assert.ok(!received.some((m) => m.raw.includes('Subject: forged')));
    } finally {
      await ctx.close();
    }
  });

  test('bad input: no recipient, a bad address, text over the limit: the form comes back as typed, nothing sent', async () => {
    const ctx = await newContext(browser);
    const page = await ctx.newPage();
    try {
      await signIn(page, base, CAROL, PASSWORD);
      const before = { sent: await sentCount(), queued: await queued() };
      const attempt = async (to: string, text: string, status: number, problem: RegExp) => {
        await page.goto(`${base}/compose`);
        await page.getByLabel('To', { exact: true }).fill(to);
        await page.getByLabel('Subject').fill('kept subject');
        await page.getByLabel('Message').fill(text);
        await page.getByLabel('Introduction (optional)').fill('kept intro');
        const [res] = await Promise.all([page.waitForResponse((r) => r.url() === `${base}/compose` && r.request().method() === 'POST'), page.getByRole('button', { name: 'Send' }).click()]);
        assert.equal(res.status(), status);
        await page.getByRole('alert').getByText('Nothing was sent.').waitFor();
        await page.getByRole('alert').getByText(problem).waitFor();
        assert.equal(await page.getByLabel('To', { exact: true }).inputValue(), to);
        assert.equal(await page.getByLabel('Subject').inputValue(), 'kept subject');
        assert.equal(await page.getByLabel('Message').inputValue(), text);
        assert.equal(await page.getByLabel('Introduction (optional)').inputValue(), 'kept intro');
      };
      await attempt('', 'no one to send to', 400, /Write at least one recipient/);
      // New addresses (not contacts), so the introduction field is there to be kept.
      await attempt('new1@peer.test, not an address', 'one bad', 400, /"not an address" is not an address/);
      await attempt('new2@peer.test', `${'x'.repeat(600 * 1024)}`, 413, /The message is 600 KB; the limit is 512 KB/);
      assert.equal(await sentCount(), before.sent);
      assert.equal(await queued(), before.queued);
    } finally {
      await ctx.close();
    }
  });

  test('axe-core finds no violations on the compose page, new and with errors (390 and 1280 px)', async () => {
    for (const width of [390, 1280]) {
      // The CSP bypass only here: axe is injected as a script the page's own policy would refuse.
      const ctx = await newContext(browser, { width, bypassCSP: true });
      const page = await ctx.newPage();
      try {
        await signIn(page, base, CAROL, PASSWORD);
        await page.goto(`${base}/compose`);
        await checkPage(page, 'compose', width);
        await page.getByLabel('To', { exact: true }).fill('not an address');
        await page.getByRole('button', { name: 'Send' }).click();
        await page.getByRole('alert').waitFor();
        await checkPage(page, 'compose-error', width);
      } finally {
        await ctx.close();
      }
    }
  });
});

describe('web app: a Two-Way Mail recipient from pending to delivered on the Sent page', { skip: browserSkip, timeout: 300_000 }, () => {
  let dns: EmbeddedDnsServer;
  let lab: TwmLab;
  let a: TestServer;
  let b: TestServer;
  let browser: Browser;

  before(async () => {
    dns = await startDnsServer();
    lab = createTwmLab();
    const port = await commonFreePort(['127.0.0.2', '127.0.0.3']);
    a = await startDomain({ lab, dns, domain: 'a.test', host: '127.0.0.2', smtpPort: port });
    b = await startDomain({ lab, dns, domain: 'b.test', host: '127.0.0.3', smtpPort: port });
    await a.server.services.accounts.add('ann@a.test', PASSWORD, 'open');
    await b.server.services.accounts.add('bea@b.test', PASSWORD, 'screen');
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
    for (const t of [a, b]) await t?.close();
    await dns?.close();
    lab?.close();
  });

  test('written in the page with an introduction: pending (bea sees the introduction), then delivered once she approves', async () => {
    const base = a.server.http.url;
    const intro = 'Grüße! We met at the meetup; <b>may</b> I ask you about your talk?';
    const ctx = await newContext(browser);
    const page = await ctx.newPage();
    try {
      await signIn(page, base, 'ann@a.test', PASSWORD);
      await page.goto(`${base}/compose?to=bea@b.test`);
      await page.locator('#intro').getByText('bea@b.test', { exact: true }).waitFor();
      await page.getByLabel('Introduction (optional)').fill(intro);
      await page.getByLabel('Subject').fill('A question about your talk');
      await page.getByLabel('Message').fill('The long question, which waits on my server until you accept.');
      await page.getByRole('button', { name: 'Send' }).click();
      await page.waitForURL(`${base}/sent`);
      const item = page.locator('ul.plain > li').filter({ hasText: 'bea@b.test' });
      const statusShown = (text: RegExp) =>
        eventually(
          async () => {
            await page.reload();
            return (await item.getByText(text).count()) > 0;
          },
          30_000,
          `${text} on the Sent page`,
        );
      await statusShown(/^Pending/);
      assert.equal(await item.getByText('(Two-Way Mail)').count(), 1);

      const bea = await b.server.services.accounts.get('bea@b.test');
      const [request] = (await b.server.services.screener.list(bea.id)).filter((r) => r.sender === 'ann@a.test');
      assert.equal(request?.intro, intro, 'the introduction typed in the page, decoded, as the stranger sees it');
      assert.equal(request?.held, 0, 'no body on the recipient side yet');

      await b.server.services.screener.approve(bea.id, ['ann@a.test']);
      await statusShown(/^Delivered/);
      // The timeline: the notice made, answered "pending" (her server screens strangers), fetched once she approved, delivered.
      const steps = (await page.getByRole('list', { name: 'History of bea@b.test' }).locator(':scope > li > .status').allTextContents()).map((x) => x.trim());
      assert.deepEqual(steps, ['Queued', 'Pending', 'Fetched by the receiving server', 'Delivered']);
      const got = (await b.server.services.mail.list(bea.id)).find((m) => m.subject === 'A question about your talk');
      assert.equal(got?.mailbox, 'INBOX');
    } finally {
      await ctx.close();
    }
  });
});
