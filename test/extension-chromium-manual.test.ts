/**
 * The extension as built (manual mode: no content script, activeTab only)
 * in Debian's Chromium: the toolbar button's popup, opened on the sign-up
 * tab with CDP Extensions.triggerAction (the browser's own action click,
 * which grants activeTab), says "Expect mail from this site"; the card is
 * stored, the user signs up, the DKIM-signed confirmation reaches INBOX
 * (user in strict mode). The same for a page declaring its mail provider
 * with <meta name="twoway-confirmation-from">, and a PUT made while the
 * server is down: shown in the popup, retried, stored once the server is
 * back. Screenshots of the real popup and the options page with
 * TWOWAY_SCREENSHOTS=1; timings printed, never asserted.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { BrowserContext, Page } from 'playwright-core';
import { createPrivateCa, issueCertificate } from '../src/config/private-ca.ts';
import { browserSkip } from './helpers/browser.ts';
import { davFetch } from './helpers/carddav.ts';
import { dkimDomain, launchChromium, openToolbarPopup, type Shop, startShop, until } from './helpers/extension-site.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';

const USER = 'manual@example.test';
const PASS = 'manual-password-1';
const SITES = ['shop.test', 'mailer.test', 'retry.test'];
const keys = Object.fromEntries(SITES.map((d) => [d, dkimDomain(d)]));
const SCREENSHOTS = process.env.TWOWAY_SCREENSHOTS === '1' ? resolve('docs/screenshots') : null;

/** A TCP relay in front of the server's HTTPS port that the test can take down and bring back (same port). */
async function relay(target: number): Promise<{ port: number; down(): Promise<void>; up(): Promise<void>; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  let server: Server;
  let port = 0;
  const listen = async () => {
    server = createServer((s) => {
      const u = connect(target, '127.0.0.1');
      for (const x of [s, u]) {
        sockets.add(x);
        x.on('close', () => sockets.delete(x));
        x.on('error', () => {
          s.destroy();
          u.destroy();
        });
      }
      s.pipe(u).pipe(s);
    });
    await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
    port = (server.address() as { port: number }).port;
  };
  const down = async () => {
    for (const s of sockets) s.destroy();
    await new Promise((r) => server.close(r));
  };
  await listen();
  return { port, down, up: listen, close: down };
}

describe('the extension in chromium, manual mode (toolbar button, activeTab)', { skip: browserSkip }, () => {
  let t: TestServer;
  let shop: Shop;
  let context: BrowserContext;
  let extId: string;
  let firstRun: Page;
  let userId: number;
  let server: Awaited<ReturnType<typeof relay>>;
  const dirs: string[] = [];
  const timings: Record<string, number[]> = { 'toolbar click → card stored (ms)': [], 'confirmation sent → INBOX (ms)': [] };

  before(async () => {
    t = await startTestServer({ records: SITES.flatMap((d) => keys[d]!.records) });
    userId = (await t.server.services.accounts.add(USER, PASS, 'strict')).id;
    const siteCert = issueCertificate(createPrivateCa('twoway extension test CA'), SITES);
    shop = await startShop(t.server.smtp.port, siteCert, keys);
    server = await relay(t.server.http.port);
    const out = mkdtempSync(join(tmpdir(), 'twoway-ext-build-'));
    dirs.push(out);
    const built = spawnSync(process.execPath, ['scripts/build-extension.mjs', '--out', out], { encoding: 'utf8' });
    assert.equal(built.status, 0, built.stderr);
    const profile = mkdtempSync(join(tmpdir(), 'twoway-ext-profile-'));
    dirs.push(profile);
    ({ context, extId, firstRun } = await launchChromium(join(out, 'extension'), profile, SITES, [siteCert.cert, davFetch(t).ca]));
  });
  after(async () => {
    if (Object.values(timings).some((v) => v.length)) console.log('# extension flow timings (manual)', JSON.stringify(timings));
    await context?.close();
    await server?.close().catch(() => undefined);
    await shop?.app.close();
    await t?.close();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  const cards = () => t.server.services.contacts.list(userId);
  /** When the server stored the message with that subject in INBOX (its receivedAt), not when the test looked. */
  const storedAt = async (subject: string) => {
    const m = (await t.server.services.mail.list(userId)).find((x) => x.mailbox === 'INBOX' && x.subject === subject);
    return m ? m.receivedAt.getTime() : null;
  };
  const newCard = async (before: Set<string>, site: string) => (await cards()).find((c) => !before.has(c.uid) && c.entries.some((e) => e.kind === 'expect' && e.value === site));

  /** The sign-up page filled in, not yet sent. */
  async function fill(url: string, address: string): Promise<Page> {
    const page = await context.newPage();
    await page.goto(url);
    await page.fill('#email', address);
    await page.fill('#password', 'a long new password');
    return page;
  }
  /** The toolbar button on that tab, then "Expect mail from this site": returns the popup's message. */
  async function expectHere(page: Page) {
    const popup = await openToolbarPopup(context, extId, page);
    // Ready once popup.js has rendered the connection state (before that the button has no handler).
    await until('the popup ready', () => popup.eval<boolean>(`(document.getElementById('state')?.textContent ?? '').startsWith('connected')`));
    const message = await popup.eval<string>(`(async () => {
      document.getElementById('expect-here').click();
      for (let i = 0; i < 200 && !document.getElementById('message').textContent; i++) await new Promise((r) => setTimeout(r, 50));
      return document.getElementById('message').textContent;
    })()`);
    return { popup, message };
  }

  it('connects on the options page; without the optional permission it is in manual mode', async () => {
    const page = firstRun; // opened by the extension at install
    await page.locator('#mode-state', { hasText: 'Manual mode' }).waitFor();
    assert.equal(await page.isVisible('#automatic-on'), true);
    await page.fill('#address', USER);
    await page.fill('#password', PASS);
    await page.fill('#server', `https://127.0.0.1:${server.port}`);
    if (SCREENSHOTS) await page.screenshot({ path: join(SCREENSHOTS, 'ext-options.png'), fullPage: true });
    await page.click('#connect button[type=submit]');
    await page.locator('#connect-message', { hasText: 'Connected' }).waitFor({ timeout: 20_000 });
    await page.close();
    // Before any mail: one authentication worker started ahead (AuthPool.warm), so the first
    // confirmation does not wait for a worker to load (it did: 2-12 s on this shared machine).
    const stats = await until('a worker started ahead of the first message', async () => t.server.authPool!.stats().ready === 1 && t.server.authPool!.stats());
    assert.equal(stats.spawned, 1);
  });

  it('the toolbar path: "Expect mail from this site" stores the card, the sign-up confirmation reaches INBOX', async () => {
    const page = await fill(`https://shop.test:${shop.port}/signup`, 'manual+shop@example.test');
    const before = new Set((await cards()).map((c) => c.uid));
    const started = Date.now();
    const { popup, message } = await expectHere(page);
    assert.equal(message, 'Expecting mail from this site.');
    const card = await until('the card for shop.test', () => newCard(before, 'shop.test'));
    timings['toolbar click → card stored (ms)']!.push(Date.now() - started);
    assert.match(card.vcard.replace(/\r\n[ \t]/g, ''), /\r\nX-TWOWAY-EXPECT;PURPOSE=ownership-confirmation;UNTIL=\d{8}T\d{6}Z;USES=3:shop\.test\r\n/);
    await popup.close();
    await page.click('button[type=submit]');
    const sent = await until('the confirmation sent', async () => shop.sent.find((s) => s.to === 'manual+shop@example.test'));
    assert.equal(sent.code, 250, sent.response);
    const seen = await until('the confirmation in INBOX', () => storedAt('Confirm your shop.test account'));
    timings['confirmation sent → INBOX (ms)']!.push(seen - sent.at);
    // Manual mode has no content script: the sign-up itself created no second card.
    assert.equal((await cards()).filter((c) => !before.has(c.uid)).length, 1);
    await page.close();
  });

  it('the toolbar path on a page declaring its mail provider: the card names it, mail from it reaches INBOX', async () => {
    const page = await fill(`https://shop.test:${shop.port}/provider/signup`, USER);
    const before = new Set((await cards()).map((c) => c.uid));
    const started = Date.now();
    const { popup, message } = await expectHere(page);
    assert.equal(message, 'Expecting mail from this site.');
    const card = await until('the card for shop.test', () => newCard(before, 'shop.test'));
    timings['toolbar click → card stored (ms)']!.push(Date.now() - started);
    assert.match(card.vcard.replace(/\r\n[ \t]/g, ''), /;USES=3;FROM=mailer\.test:shop\.test\r\n/);
    await popup.close();
    const sentBefore = shop.sent.length;
    await page.click('button[type=submit]');
    const sent = await until('the confirmation sent', async () => shop.sent[sentBefore]);
    assert.equal(sent.from, 'no-reply@mailer.test');
    assert.equal(sent.code, 250, sent.response);
    const seen = await until('the confirmation in INBOX', () => storedAt('Confirm your mailer.test account'));
    timings['confirmation sent → INBOX (ms)']!.push(seen - sent.at);
    const again = await openToolbarPopup(context, extId, page);
    const terms = await until('the entry read back', () =>
      again.eval<string | null>(`(() => { const li = [...document.querySelectorAll('.entry')].find((e) => e.textContent.includes('shop.test (and mailer.test)')); const s = li?.querySelector('.terms').textContent; return s?.includes('2 uses left') ? s : null; })()`),
    );
    assert.match(terms, /^1 h 5\d min left, 2 uses left$/);
    if (SCREENSHOTS) await again.screenshot(join(SCREENSHOTS, 'ext-popup.png'));
    await again.close();
    await page.close();
  });

  it('a network failure during the PUT is shown in the popup and retried until the server is back', async () => {
    await server.down();
    const page = await fill(`https://retry.test:${shop.port}/signup`, USER);
    const before = new Set((await cards()).map((c) => c.uid));
    const { popup, message } = await expectHere(page);
    assert.match(message, /^Not stored yet: network: .+\. The extension keeps trying\.$/);
    // The list is rendered right after the message.
    const pending = await until('the pending entry in the popup', () => popup.eval<string>(`document.querySelector('.entry.pending .terms')?.textContent ?? ''`));
    assert.match(pending, /^not stored yet \(attempt 1\): network: .+; retrying$/);
    assert.equal(await newCard(before, 'retry.test'), undefined);
    await server.up();
    const card = await until('the card stored after the retry', () => newCard(before, 'retry.test'), 30_000);
    assert.match(card.vcard.replace(/\r\n[ \t]/g, ''), /;USES=3:retry\.test\r\n/);
    // The open popup follows the retry: the entry turns into a stored one.
    const terms = await until('the popup showing the stored entry', () =>
      popup.eval<string | null>(`(() => { const li = document.querySelector('.entry[data-site="retry.test"]'); return li?.classList.contains('stored') ? li.querySelector('.terms').textContent : null; })()`),
    );
    assert.match(terms, /min left, 3 uses left$/);
    await popup.close();
    await page.close();
  });
});
