/**
 * The Screener page in chromium beyond web-browser.test.ts: the keyboard
 * shortcuts (j/k move, x select, a approve, d deny: keys only, no mouse),
 * the bulk form without JavaScript, key paging over more than one page,
 * the poll paused while requests are selected, compressed answers, and axe
 * plus the screenshots of a realistic Screener and of a request's preview (a Two-Way Mail stranger with
 * an introduction, held SMTP mail, a likely-spam sender).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Browser, Page } from 'playwright-core';
import type { NewMessage, TwmInNotice } from '../src/store/types.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';
import { browserSkip, checkPage, launchBrowser, newContext, signIn } from './helpers/browser.ts';

const PASSWORD = 'correct horse battery staple';

describe('the Screener in chromium', { skip: browserSkip, timeout: 300_000 }, () => {
  let t: TestServer;
  let browser: Browser;
  let base: string;
  let n = 0;

  before(async () => {
    t = await startTestServer();
    base = t.server.http.url;
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
    await t?.close();
  });

  async function user(name: string): Promise<{ id: number; address: string }> {
    const u = await t.server.services.accounts.add(`${name}@example.test`, PASSWORD, 'screen');
    return { id: u.id, address: u.address };
  }

  /** Held SMTP mail from a stranger, written as the SMTP delivery writes it (the SMTP path is tested elsewhere). */
  function held(userId: number, sender: string, subject: string, facts: Partial<NonNullable<NewMessage['request']>> = {}, at = new Date(Date.now() - ++n * 60_000)): NewMessage {
    return {
      userId,
      mailbox: 'Screener',
      raw: Buffer.from(`From: ${sender}\r\nSubject: ${subject}\r\nContent-Type: text/plain\r\n\r\nHello.\r\n`),
      flags: [],
      sender,
      from: sender,
      subject,
      receivedAt: at,
      firstContact: true,
      request: { sender, authDomain: null, subject, ...facts },
    };
  }
  const status = async (userId: number, sender: string) => (await t.server.store.requests.get(userId, sender))?.status;
  const inbox = async (userId: number) => (await t.server.services.mail.list(userId, 'INBOX')).map((m) => m.subject);
  /** The sender of the request the focus is on (null: not on a request). */
  const focused = (page: Page) => page.evaluate(() => document.activeElement?.closest('li.request')?.querySelector('h2')?.textContent ?? null);

  test('keyboard only: j/k move, x selects, a approves the selection, d denies the current request', async () => {
    const u = await user('keys');
    await t.server.store.messages.deliver([
      held(u.id, 'ann@one.test', 'First'),
      held(u.id, 'ben@two.test', 'Second'),
      held(u.id, 'cat@three.test', 'Third'),
      held(u.id, 'dan@four.test', 'Fourth'),
    ]);
    const ctx = await newContext(browser);
    const page = await ctx.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    // Every answer but the favicon's (the app has none) must be a success or a redirect.
    page.on('response', (r) => {
      if (r.status() >= 400 && !r.url().endsWith('/favicon.ico')) errors.push(`${r.status()} ${r.url()}`);
    });
    try {
      await signIn(page, base, u.address, PASSWORD);
      const order = await page.locator('#requests li.request h2').allTextContents();
      assert.deepEqual(order, ['ann@one.test', 'ben@two.test', 'cat@three.test', 'dan@four.test'], 'same rank: most recent first');
      await page.keyboard.press('j');
      assert.equal(await focused(page), 'ann@one.test');
      await page.keyboard.press('j');
      await page.keyboard.press('j');
      await page.keyboard.press('k');
      assert.equal(await focused(page), 'ben@two.test');
      await page.keyboard.press('x');
      await page.keyboard.press('j');
      await page.keyboard.press('x');
      await page.keyboard.press('x');
      await page.keyboard.press('x');
      assert.deepEqual(await page.locator('#requests input[type=checkbox]:checked').evaluateAll((els) => els.map((e) => (e as HTMLInputElement).value)), ['ben@two.test', 'cat@three.test']);

      await page.keyboard.press('a');
      await page.getByRole('status').getByText('Approved 2 senders: 2 held messages handled.').waitFor();
      assert.equal(await status(u.id, 'ben@two.test'), 'approved');
      assert.equal(await status(u.id, 'cat@three.test'), 'approved');
      assert.deepEqual((await inbox(u.id)).sort(), ['Second', 'Third']);
      assert.equal(await status(u.id, 'ann@one.test'), 'pending', 'the unselected ones are left');
      // The focus is back in the list after the swap: at the same place (now dan's request).
      await page.waitForFunction(() => document.activeElement?.closest('li.request') !== null);
      assert.equal(await focused(page), 'dan@four.test');
      await page.keyboard.press('k');
      assert.equal(await focused(page), 'ann@one.test');

      await page.keyboard.press('d');
      await page.getByRole('status').getByText('Denied ann@one.test: 1 held message handled.').waitFor();
      assert.equal(await status(u.id, 'ann@one.test'), 'denied');
      assert.equal(await status(u.id, 'dan@four.test'), 'pending');
      assert.ok(!(await inbox(u.id)).includes('First'), 'denied mail is dropped');
      assert.deepEqual(await page.locator('#requests li.request h2').allTextContents(), ['dan@four.test']);
      assert.deepEqual(errors, []);
    } finally {
      await ctx.close();
    }
  });

  test('without JavaScript: the bulk form denies the ticked requests (a form post and a redirect)', async () => {
    const u = await user('nojs');
    await t.server.store.messages.deliver([held(u.id, 'one@spam.test', 'A'), held(u.id, 'two@spam.test', 'B'), held(u.id, 'keep@friend.test', 'C')]);
    const ctx = await browser.newContext({ ignoreHTTPSErrors: true, javaScriptEnabled: false });
    const page = await ctx.newPage();
    try {
      await signIn(page, base, u.address, PASSWORD);
      await page.getByRole('checkbox', { name: 'Select one@spam.test' }).check();
      await page.getByRole('checkbox', { name: 'Select two@spam.test' }).check();
      const posted = page.waitForResponse((r) => r.url().endsWith('/screener/bulk'));
      await page.getByRole('button', { name: 'Deny selected' }).click();
      assert.equal((await posted).status(), 303);
      await page.getByRole('status').getByText('Denied 2 senders: 2 held messages handled.').waitFor();
      assert.equal(await status(u.id, 'one@spam.test'), 'denied');
      assert.equal(await status(u.id, 'two@spam.test'), 'denied');
      assert.equal(await status(u.id, 'keep@friend.test'), 'pending');
      // Nothing ticked: nothing happens, and the page says so.
      await page.getByRole('button', { name: 'Approve selected' }).click();
      await page.getByRole('status').getByText(/Nothing was selected/).waitFor();
      assert.equal(await status(u.id, 'keep@friend.test'), 'pending');
    } finally {
      await ctx.close();
    }
  });

  test('key paging: 120 requests in pages of 50, each once, in rank order; likely spam only when asked', async () => {
    const u = await user('pages');
    const batch: NewMessage[] = [];
    const t0 = Date.now() - 86_400_000;
    // Equal times in threes: the id breaks the ties, across page boundaries too.
    for (let i = 0; i < 120; i++) batch.push(held(u.id, `p${i}@d${i % 7}.test`, `Subject ${i}`, i % 4 === 0 ? { authDomain: `d${i % 7}.test` } : {}, new Date(t0 + Math.floor(i / 3) * 1000)));
    batch.push(held(u.id, 'junk@spam.test', 'WIN A PRIZE', { likelySpam: true, spamScore: 12 }));
    await t.server.store.messages.deliver(batch);
    const expected = (await t.server.services.screener.list(u.id, 'pending')).map((r) => r.sender);
    const ctx = await browser.newContext({ ignoreHTTPSErrors: true, javaScriptEnabled: false });
    const page = await ctx.newPage();
    try {
      await signIn(page, base, u.address, PASSWORD);
      await page.getByRole('heading', { name: '120 pending requests' }).waitFor();
      await page.getByText('1 more judged likely spam is not listed.').waitFor();
      const seen: string[] = [];
      for (const size of [50, 50, 20]) {
        const shown = await page.locator('#requests li.request h2').allTextContents();
        assert.equal(shown.length, size);
        seen.push(...shown);
        if (size === 20) break;
        await page.getByRole('link', { name: 'Next 50' }).click();
        assert.match(page.url(), /\/screener\?after=-?\d+_\d+_\d+$/, 'a key, not an offset');
      }
      assert.equal(await page.getByRole('link', { name: 'Next 50' }).count(), 0, 'no next page after the last');
      assert.deepEqual(seen, expected, 'every request once, in the order of the ranked list');
      await page.getByRole('link', { name: 'First page' }).click();
      assert.equal((await page.locator('#requests li.request h2').allTextContents())[0], expected[0]);

      await page.getByRole('link', { name: 'Show it' }).click();
      await page.getByRole('heading', { name: '121 pending requests' }).waitFor();
      // A bad key is the first page, not an error.
      await page.goto(`${base}/screener?after=nonsense`);
      assert.equal((await page.locator('#requests li.request h2').allTextContents())[0], expected[0]);
    } finally {
      await ctx.close();
    }
  });

  test('a new request appears without a reload, but not while requests are ticked (the poll waits)', async () => {
    const u = await user('poll');
    await t.server.store.messages.deliver([held(u.id, 'first@poll.test', 'Here first')]);
    const ctx = await newContext(browser);
    const page = await ctx.newPage();
    try {
      await signIn(page, base, u.address, PASSWORD);
      await page.keyboard.press('j');
      await page.keyboard.press('x');
      await t.server.store.messages.deliver([held(u.id, 'second@poll.test', 'Arrived meanwhile', {}, new Date())]);
      // Two poll periods (5 s each) with a request ticked: nothing swapped, the tick kept.
      await page.waitForTimeout(11_000);
      assert.equal(await page.getByRole('heading', { name: 'second@poll.test' }).count(), 0);
      assert.equal(await page.getByRole('checkbox', { name: 'Select first@poll.test' }).isChecked(), true);
      await page.keyboard.press('x');
      await page.getByRole('heading', { name: 'second@poll.test' }).waitFor({ timeout: 15_000 });
    } finally {
      await ctx.close();
    }
  });

  test('pages, htmx, the stylesheet and the script are compressed for a browser (br), with Vary', async () => {
    const u = await user('weight');
    const ctx = await newContext(browser);
    const page = await ctx.newPage();
    const seen = new Map<string, { encoding: string | undefined; vary: string | undefined }>();
    page.on('response', (r) => {
      const h = r.headers();
      seen.set(new URL(r.url()).pathname, { encoding: h['content-encoding'], vary: h.vary });
    });
    try {
      await signIn(page, base, u.address, PASSWORD);
      await page.waitForLoadState('load');
      const html = seen.get('/screener');
      assert.deepEqual(html, { encoding: 'br', vary: 'accept-encoding' });
      const statics = [...seen].filter(([path]) => path.startsWith('/static/'));
      assert.deepEqual(statics.map(([p]) => p.replace(/-[^/]+$/, '')).sort(), ['/static/htmx', '/static/screener', '/static/style']);
      for (const [path, h] of statics) assert.equal(h.encoding, 'br', path);
      assert.equal(await page.evaluate(() => typeof (window as unknown as { htmx?: unknown }).htmx), 'object', 'htmx decoded and ran');
    } finally {
      await ctx.close();
    }
  });

  test('axe-core finds no violations on a realistic Screener; screenshots at 390 and 1280 px', async () => {
    const u = await user('screenshot');
    const now = Date.now();
    await t.server.store.messages.deliver([
      held(u.id, 'maria.lopez@university.example', 'Guest lecture in March?', { authDomain: 'university.example', dmarc: { result: 'pass', policy: 'reject' }, spamScore: -0.5 }, new Date(now - 3 * 3_600_000)),
      held(u.id, 'billing@shop.example', 'Your invoice #4821', { authDomain: 'shop.example', spamScore: 1.2 }, new Date(now - 26 * 3_600_000)),
      held(u.id, 'winner@prize-claims.example', 'You have WON a $1,000 gift card!!!', { dmarc: { result: 'fail', policy: 'none' }, spamScore: 14.2, likelySpam: true }, new Date(now - 5 * 3_600_000)),
    ]);
    await t.server.store.messages.deliver([held(u.id, 'billing@shop.example', 'Reminder: invoice #4821', { authDomain: 'shop.example', spamScore: 1.0 }, new Date(now - 2 * 3_600_000))]);
    // A Two-Way Mail stranger: a notice with an introduction, no body on this server.
    const notice: TwmInNotice = {
      senderDomain: 'makerspace.example',
      id: 'n-screenshot-1',
      contentSha256: 'a'.repeat(64),
      from: 'sam@makerspace.example',
      to: [u.address],
      size: 2048,
      sha256: 'b'.repeat(64),
      createdAt: new Date(now - 40 * 60_000),
      expiresAt: new Date(now + 7 * 86_400_000),
      intro: "Hi! I run the Thursday repair café at the makerspace. Your neighbour Ines said you fix old radios; would you like to join us one evening?",
      purpose: null,
      listId: null,
      receivedAt: new Date(now - 40 * 60_000),
    };
    await t.server.store.twmIn.record(
      notice,
      [{ senderDomain: notice.senderDomain, noticeId: notice.id, rcpt: u.address, userId: u.id, state: 'pending', nextAttemptAt: null, receipt: null, receiptError: null }],
      [{ userId: u.id, sender: notice.from, authDomain: notice.senderDomain, intro: notice.intro, at: notice.receivedAt }],
    );
    for (const width of [390, 1280]) {
      // The CSP bypass only here: axe is injected as a script the page's own policy would refuse.
      const ctx = await newContext(browser, { width, bypassCSP: true });
      const page = await ctx.newPage();
      try {
        await signIn(page, base, u.address, PASSWORD);
        await page.goto(`${base}/screener?likely=1`);
        await page.getByText('Hi! I run the Thursday repair café', { exact: false }).waitFor();
        await page.getByText('likely spam', { exact: true }).waitFor();
        // One request under the keyboard's focus and ticked, as a user mid-way would see it.
        await page.keyboard.press('j');
        await page.keyboard.press('x');
        await checkPage(page, 'screener', width);
        // The preview: the held SMTP mail, newest first, each opening on the message page; a TWM request holds nothing here.
        await page.getByRole('link', { name: 'Preview', description: 'billing@shop.example' }).click();
        await page.getByRole('heading', { name: 'Held mail' }).waitFor();
        assert.deepEqual(await page.locator('ul.held a').allTextContents(), ['Reminder: invoice #4821', 'Your invoice #4821']);
        assert.match((await page.locator('ul.held a').first().getAttribute('href')) ?? '', /^\/message\/\d+$/);
        await checkPage(page, 'screener-preview', width);
        await page.goto(`${base}/screener/preview?sender=${encodeURIComponent(notice.from)}`);
        await page.getByText("stays on the sender's server until you approve", { exact: false }).waitFor();
        await page.getByText('Hi! I run the Thursday repair café', { exact: false }).waitFor();
        assert.equal(await page.locator('ul.held').count(), 0);
        assert.equal((await page.goto(`${base}/screener/preview?sender=nobody%40nowhere.test`))?.status(), 404, 'no such request: 404');
      } finally {
        await ctx.close();
      }
    }
  });
});
