/**
 * The web app in a real browser (chromium via playwright-core) against a real
 * server on loopback: sign-in and session fixation, CSRF, the Screener
 * (approve by click and by keyboard, deny, live updates, hostile content),
 * settings (mode, app passwords: a revoked one fails over CardDAV), other
 * sessions, axe-core on every page, and the screenshots in docs/screenshots/.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import type { Browser } from 'playwright-core';
import { rawMessage, send, senderDomain, startTestServer, type TestServer } from './helpers/server.ts';
import { basic, davFetch } from './helpers/carddav.ts';
import { browserSkip, checkPage, launchBrowser, newContext, signIn } from './helpers/browser.ts';

const PASSWORD = 'correct horse battery staple';
const ALICE = 'alice@example.test';

describe('web app in chromium', { skip: browserSkip }, () => {
  let t: TestServer;
  let browser: Browser;
  let base: string;
  let aliceId: number;
  const sd = senderDomain('friends.test');
  const dav = () => davFetch(t);

  /** Mail from a stranger, held in alice's Screener (she is in `screen` mode). */
  async function stranger(from: string, subject: string, signed = false, display = ''): Promise<void> {
    let raw = rawMessage(display ? `${display} <${from}>` : from, ALICE, subject);
    if (signed) raw = await sd.sign(raw);
    await send({ port: t.server.smtp.port, from, to: ALICE, raw });
  }
  const held = async (sender: string) => (await t.server.store.requests.get(aliceId, sender))?.held ?? 0;
  const inbox = async () => (await t.server.services.mail.list(aliceId, 'INBOX')).map((m) => m.subject);

  before(async () => {
    t = await startTestServer({ records: sd.records });
    base = t.server.http.url;
    aliceId = (await t.server.services.accounts.add(ALICE, PASSWORD, 'screen')).id;
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
    await t?.close();
  });

  test('sign-in: a wrong password and an app password are refused; the session id is new at every sign-in', async () => {
    const app = await t.server.services.accounts.addAppPassword(await t.server.services.accounts.get(ALICE), 'Phone', 'all');
    const ctx = await newContext(browser);
    const page = await ctx.newPage();
    try {
      // An attacker's planted session (a real one, opened elsewhere) must not survive the victim's sign-in.
      const other = await newContext(browser);
      await signIn(await other.newPage(), base, ALICE, PASSWORD);
      const planted = (await other.cookies()).find((c) => c.name === '__Host-twoway-session')!;
      await other.close();

      await page.goto(`${base}/sign-in`);
      // Planted after the form is loaded: a signed-in browser is sent from /sign-in to the Screener.
      await ctx.addCookies([planted]);
      await page.getByLabel('Address').fill(ALICE);
      await page.getByLabel('Password', { exact: true }).fill('wrong password!');
      const wrong = page.waitForResponse((r) => r.url().endsWith('/sign-in') && r.request().method() === 'POST');
      await page.getByRole('button', { name: 'Sign in' }).click();
      assert.equal((await wrong).status(), 401);
      await page.getByRole('alert').filter({ hasText: 'Wrong address or password' }).waitFor();

      await page.getByLabel('Password', { exact: true }).fill(app.password);
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.getByRole('alert').filter({ hasText: 'Wrong address or password' }).waitFor();
      assert.equal(page.url(), `${base}/sign-in`, 'an app password does not sign in to the web app');

      // On the re-rendered form (the planted cookie would send a fresh GET /sign-in on to the Screener).
      await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.waitForURL(`${base}/screener`);
      const cookie = (await ctx.cookies()).find((c) => c.name === '__Host-twoway-session')!;
      assert.notEqual(cookie.value, planted.value, 'a new session id at sign-in');
      assert.equal(cookie.httpOnly, true);
      assert.equal(cookie.secure, true);
      assert.equal(cookie.sameSite, 'Strict');
      const replay = await fetchAs(planted.value, '/screener');
      assert.equal(replay.status, 303, 'the planted session was ended');
      await t.server.services.accounts.revokeAppPassword(await t.server.services.accounts.get(ALICE), app.id);
    } finally {
      await ctx.close();
    }
  });

  /** A GET with only a session cookie, over the test CA. */
  async function fetchAs(session: string, path: string) {
    const d = dav();
    try {
      return await d.fetch(`${base}${path}`, { redirect: 'manual', headers: { cookie: `__Host-twoway-session=${session}` } });
    } finally {
      await d.close();
    }
  }

  test('CSRF: a state-changing POST without the token (or with a wrong one) is 403 and changes nothing', async () => {
    await stranger('csrf@nowhere.test', 'csrf probe');
    const ctx = await newContext(browser);
    const page = await ctx.newPage();
    try {
      await signIn(page, base, ALICE, PASSWORD);
      const forms: Array<Record<string, string>> = [{ sender: 'csrf@nowhere.test' }, { sender: 'csrf@nowhere.test', _csrf: 'forged' }];
      for (const form of forms) {
        const res = await page.request.post(`${base}/screener/approve`, { form, maxRedirects: 0 });
        assert.equal(res.status(), 403);
        assert.match(await res.text(), /Forbidden/);
      }
      const mode = await page.request.post(`${base}/settings/mode`, { form: { mode: 'open' }, maxRedirects: 0 });
      assert.equal(mode.status(), 403);
      assert.equal((await t.server.services.accounts.get(ALICE)).mode, 'screen');
      assert.equal(await held('csrf@nowhere.test'), 1, 'nothing was approved');
      // Signed out, a POST is refused too.
      const anon = await (await newContext(browser)).request.post(`${base}/settings/mode`, { form: { mode: 'open' }, maxRedirects: 0 });
      assert.equal(anon.status(), 403);
      // The clean-up goes through the Screener as the CLI would.
      await t.server.services.screener.clear(aliceId, ['csrf@nowhere.test']);
    } finally {
      await ctx.close();
    }
  });

  test('the Screener: hostile content runs nothing; approve moves held mail to INBOX; deny drops it; keyboard approve; live update', async () => {
    await stranger('friend@friends.test', 'Lunch on Friday?', true);
    await stranger('pest@nowhere.test', 'Buy now');
    await stranger('kbd@nowhere.test', 'Typed by keyboard');
    const hostile = `<script>alert("subject")</script><img src="https://evil.invalid/s.png" onerror="alert('img')">`;
    await stranger('evil@nowhere.test', hostile, false, `"<img src=https://evil.invalid/n.png onerror=alert(2)>"`);
    // An introduction as a Two-Way Mail stranger would send it (set in the store: the TWM path is tested elsewhere).
    const db = new Database(join(t.dir, 'data', 'twoway.db'));
    db.prepare('UPDATE contact_requests SET intro = ? WHERE sender = ?').run(`Hi!\n<script>alert("intro")</script><img src=x onerror="fetch('https://evil.invalid/i')">`, 'evil@nowhere.test');
    db.close();

    const ctx = await newContext(browser);
    const page = await ctx.newPage();
    const events: string[] = [];
    page.on('dialog', (d) => {
      events.push(`dialog: ${d.message()}`);
      void d.dismiss();
    });
    page.on('console', (m) => events.push(`console ${m.type()}: ${m.text()}`));
    page.on('pageerror', (e) => events.push(`pageerror: ${e.message}`));
    page.on('request', (r) => {
      if (!r.url().startsWith(base)) events.push(`request: ${r.url()}`);
    });
    try {
      await signIn(page, base, ALICE, PASSWORD);
      const friend = page.getByRole('listitem').filter({ has: page.getByRole('heading', { name: 'friend@friends.test' }) });
      await friend.getByText('friends.test', { exact: true }).waitFor();
      await page.getByRole('listitem').filter({ hasText: 'pest@nowhere.test' }).getByText('not authenticated', { exact: true }).waitFor();
      const evil = page.getByRole('listitem').filter({ has: page.getByRole('heading', { name: 'evil@nowhere.test' }) });
      await evil.getByText(hostile, { exact: true }).waitFor();
      await evil.getByText('<script>alert("intro")</script>', { exact: false }).waitFor();
      // The one script in main is the Screener's own keyboard script (a same-origin file).
      assert.equal(await page.locator('main script:not([src^="/static/screener-"]), main img').count(), 0, 'hostile markup stays text');

      // Approve by click: the held message goes to INBOX (in the store, as the API and IMAP see it).
      assert.equal(await held('friend@friends.test'), 1);
      await friend.getByRole('button', { name: 'Approve', exact: true }).click();
      await page.getByRole('status').getByText('Approved friend@friends.test').waitFor();
      assert.equal(await friend.count(), 0, 'gone from the list');
      assert.ok((await inbox()).includes('Lunch on Friday?'));
      assert.equal((await t.server.store.requests.get(aliceId, 'friend@friends.test'))?.status, 'approved');

      // Deny: the held message is dropped and the sender blocked.
      await page.getByRole('listitem').filter({ hasText: 'pest@nowhere.test' }).getByRole('button', { name: 'Deny' }).click();
      await page.getByRole('status').getByText('Denied pest@nowhere.test').waitFor();
      assert.equal((await t.server.store.requests.get(aliceId, 'pest@nowhere.test'))?.status, 'denied');
      assert.ok(!(await inbox()).includes('Buy now'));

      // Keyboard only: Tab to kbd's Approve button and press Enter.
      let found = false;
      for (let i = 0; i < 60 && !found; i++) {
        await page.keyboard.press('Tab');
        found = await page.evaluate(() => {
          const el = document.activeElement;
          return el instanceof HTMLButtonElement && el.textContent === 'Approve' && el.form?.querySelector<HTMLInputElement>('input[name=sender]')?.value === 'kbd@nowhere.test';
        });
      }
      assert.ok(found, 'the Approve button is reachable by Tab');
      await page.keyboard.press('Enter');
      await page.getByRole('status').getByText('Approved kbd@nowhere.test').waitFor();
      assert.ok((await inbox()).includes('Typed by keyboard'));

      // A new request appears without a reload (htmx polling).
      await stranger('late@nowhere.test', 'Arrived while you looked');
      await page.getByRole('heading', { name: 'late@nowhere.test' }).waitFor({ timeout: 15_000 });
      assert.deepEqual(events, [], 'no dialog, console message, error or foreign request');
    } finally {
      await ctx.close();
    }
  });

  test('settings: change the mode; create an app password that works over CardDAV, revoke it and it fails', async () => {
    const ctx = await newContext(browser);
    const page = await ctx.newPage();
    const d = dav();
    const propfind = (pass: string) =>
      d.fetch(`${base}/dav/principals/${ALICE}/`, { method: 'PROPFIND', headers: { authorization: basic(ALICE, pass), depth: '0' } });
    try {
      await signIn(page, base, ALICE, PASSWORD);
      await page.getByRole('link', { name: 'Settings' }).click();
      await page.getByRole('radio', { name: /strict/ }).check();
      await page.getByRole('button', { name: 'Save mode' }).click();
      await page.getByRole('status').getByText('The mode was saved.').waitFor();
      assert.equal((await t.server.services.accounts.get(ALICE)).mode, 'strict');
      assert.ok(await page.getByRole('radio', { name: /strict/ }).isChecked());

      await page.getByLabel('Name').fill('Contacts app');
      await page.getByLabel('Access').selectOption('contacts');
      await page.getByRole('button', { name: 'Create app password' }).click();
      const secret = (await page.locator('#new-app-password').textContent())!.trim();
      assert.match(secret, /^twp_[0-9a-f]{12}_/);
      assert.equal((await propfind(secret)).status, 207, 'the new app password works over CardDAV');
      // The settings for apps: the address book URL the page shows works with that app password, and
      // the autoconfig link names this server's IMAP and submission.
      const bookUrl = (await page.locator('dl.clients code').filter({ hasText: '/dav/addressbooks/' }).textContent())!.trim();
      assert.equal((await d.fetch(bookUrl, { method: 'PROPFIND', headers: { authorization: basic(ALICE, secret), depth: '0' } })).status, 207, 'the address book URL on the page works');
      const href = (await page.getByRole('link', { name: 'autoconfig' }).getAttribute('href'))!;
      const xml = await (await page.request.get(new URL(href, base).href)).text();
      assert.match(xml, new RegExp(`<hostname>${t.server.config.hostname}</hostname>`));
      assert.match(xml, /<incomingServer type="imap">/);
      await page.goto(`${base}/settings`);
      const row = page.getByRole('row').filter({ hasText: 'Contacts app' });
      await row.getByText('contacts (CardDAV) only').waitFor();
      await row.getByText(/UTC$/).nth(1).waitFor(); // last used: now set
      await row.getByRole('button', { name: 'Revoke Contacts app' }).click();
      await page.getByRole('status').getByText('The app password was revoked.').waitFor();
      assert.equal((await propfind(secret)).status, 401, 'the revoked app password fails over CardDAV');
      await t.server.services.accounts.setMode(ALICE, 'screen');
    } finally {
      await d.close();
      await ctx.close();
    }
  });

  test('sessions: see the other session and end it; a password change ends them all', async () => {
    const a = await newContext(browser);
    const b = await newContext(browser);
    try {
      const pa = await a.newPage();
      const pb = await b.newPage();
      await signIn(pa, base, ALICE, PASSWORD);
      await signIn(pb, base, ALICE, PASSWORD);
      // Off the signed-in page: its live updates would redirect to /sign-in once the session ends,
      // racing (and interrupting) the navigation below that checks exactly that.
      await pb.goto('about:blank');
      await pa.getByRole('link', { name: 'Sessions' }).click();
      const rows = pa.getByRole('row').filter({ has: pa.getByRole('button', { name: /^End session/ }) });
      const before = await rows.count();
      assert.ok(before >= 1);
      // End every other session: b's among them.
      while ((await rows.count()) > 0) {
        await rows.first().getByRole('button').click();
        await pa.getByRole('status').getByText('The session was ended.').waitFor();
      }
      await pb.goto(`${base}/settings`);
      assert.equal(new URL(pb.url()).pathname, '/sign-in', 'the ended session is signed out');
      await t.server.services.accounts.setPassword(ALICE, PASSWORD);
      await pa.goto(`${base}/screener`);
      assert.equal(new URL(pa.url()).pathname, '/sign-in', 'a password change ends web sessions');
    } finally {
      await a.close();
      await b.close();
    }
  });

  // The Screener's own axe check and screenshot (realistic requests, not this file's hostile ones): test/web-screener-browser.test.ts.
  test('axe-core finds no violations on any page; screenshots at 390 and 1280 px', async () => {
    const pages: Array<[string, string]> = [
      ['sign-in', '/sign-in'],
      ['settings', '/settings'],
      ['sessions', '/sessions'],
    ];
    for (const width of [390, 1280]) {
      // The CSP bypass only here: axe is injected as a script the page's own policy would refuse.
      const ctx = await newContext(browser, { width, bypassCSP: true });
      const page = await ctx.newPage();
      try {
        for (const [name, path] of pages) {
          if (name === 'settings') await signIn(page, base, ALICE, PASSWORD);
          await page.goto(`${base}${path}`);
          await checkPage(page, name, width);
        }
      } finally {
        await ctx.close();
      }
    }
  });
});

/** Plain HTTP facts every HTML answer must have (no browser needed). */
describe('web app headers', () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer();
  });
  after(() => t?.close());

  test('a strict CSP, no framing, no-store; signed out a page redirects to /sign-in', async () => {
    const d = davFetch(t);
    try {
      const res = await d.fetch(`${t.server.http.url}/sign-in`);
      assert.equal(res.status, 200);
      const csp = res.headers.get('content-security-policy') ?? '';
      assert.match(csp, /default-src 'self'/);
      assert.match(csp, /frame-ancestors 'none'/);
      assert.doesNotMatch(csp, /unsafe/);
      assert.equal(res.headers.get('x-frame-options'), 'DENY');
      assert.equal(res.headers.get('cache-control'), 'no-store');
      const body = await res.text();
      assert.doesNotMatch(body, /hx-on|<script>|style=/, 'no inline script, style or hx-on');
      const htmx = /src="(\/static\/htmx-2\.[0-9.]+\.min\.js)"/.exec(body)?.[1];
      assert.ok(htmx, 'htmx from a versioned path');
      const js = await d.fetch(`${t.server.http.url}${htmx}`);
      assert.equal(js.status, 200);
      assert.match(js.headers.get('content-type') ?? '', /javascript/);
      assert.match(await js.text(), /htmx/);
      const screener = await d.fetch(`${t.server.http.url}/screener`, { redirect: 'manual' });
      assert.equal(screener.status, 303);
      assert.equal(screener.headers.get('location'), '/sign-in');
    } finally {
      await d.close();
    }
  });
});
