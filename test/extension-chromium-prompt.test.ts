/**
 * Automatic mode through Chromium's own permission prompt: the package as
 * built (https://*\/* only optional), headed Debian Chromium on a private
 * Xvfb display. The options page's "Turn on automatic mode" is clicked over
 * CDP Input (a trusted click: the user gesture permissions.request needs);
 * the browser's native dialog ("… has requested additional permissions",
 * Deny / Allow, Deny focused) is seen on the X screen and answered with
 * xdotool as a user would: Return (Deny) first, then Tab and Return (Allow).
 * Then the permission is held, the background has registered the content
 * script, and a sign-up creates the card and its confirmation reaches INBOX
 * (user in strict mode); before the grant the same sign-up created nothing
 * and its confirmation got the strict-mode 550.
 *
 * Chromium is started here, not by playwright (which drives it over
 * connectOverCDP afterwards): started with playwright's own launch flags,
 * this Chromium answers permissions.request with false at once and shows no
 * dialog.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core';
import { createPrivateCa, issueCertificate } from '../src/config/private-ca.ts';
import { browserSkip, CHROMIUM } from './helpers/browser.ts';
import { davFetch } from './helpers/carddav.ts';
import { dkimDomain, type Shop, spki, startShop, until } from './helpers/extension-site.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';
import { changed, type Screen, startXvfb, type Xvfb, xvfbSkip } from './helpers/xvfb.ts';

const USER = 'prompted@example.test';
const PASS = 'prompted-password-1';
const SITES = ['shop.test'];
const keys = { 'shop.test': dkimDomain('shop.test') };
const SCREENSHOTS = process.env.TWOWAY_SCREENSHOTS === '1' ? resolve('docs/screenshots') : null;
const ALL_SITES = { origins: ['https://*/*'] };
/** The extension API as the options page sees it (no @types/chrome here). */
declare const chrome: {
  permissions: { contains(p: typeof ALL_SITES): Promise<boolean> };
  scripting: { getRegisteredContentScripts(): Promise<{ id: string; matches: string[] }[]> };
};

describe('automatic mode through chromium permission prompt (xvfb, xdotool)', { skip: browserSkip ?? xvfbSkip }, () => {
  let t: TestServer;
  let shop: Shop;
  let x: Xvfb;
  let proc: ChildProcess;
  let browser: Browser;
  let context: BrowserContext;
  let options: Page;
  let userId: number;
  const dirs: string[] = [];
  const timings: Record<string, number[]> = { 'click → dialog on screen (ms)': [], 'Allow → content script registered (ms)': [], 'submit → card stored (ms)': [] };

  before(async () => {
    t = await startTestServer({ records: keys['shop.test'].records });
    userId = (await t.server.services.accounts.add(USER, PASS, 'strict')).id;
    const siteCert = issueCertificate(createPrivateCa('twoway extension test CA'), SITES);
    shop = await startShop(t.server.smtp.port, siteCert, keys);
    const out = mkdtempSync(join(tmpdir(), 'twoway-ext-build-'));
    const screen = mkdtempSync(join(tmpdir(), 'twoway-xvfb-'));
    const profile = mkdtempSync(join(tmpdir(), 'twoway-ext-profile-'));
    dirs.push(out, screen, profile);
    const built = spawnSync(process.execPath, ['scripts/build-extension.mjs', '--out', out], { encoding: 'utf8' });
    assert.equal(built.status, 0, built.stderr);
    const ext = join(out, 'extension');
    x = await startXvfb(screen);
    const { ca: serverCert } = davFetch(t);
    proc = spawn(
      CHROMIUM,
      [
        '--no-sandbox',
        '--disable-gpu',
        '--no-first-run',
        '--no-default-browser-check',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--ozone-platform=x11',
        '--window-position=0,0',
        '--window-size=1050,880',
        '--remote-debugging-port=0',
        `--user-data-dir=${profile}`,
        `--disable-extensions-except=${ext}`,
        `--load-extension=${ext}`,
        `--host-resolver-rules=${SITES.map((s) => `MAP ${s} 127.0.0.1`).join(', ')}`,
        `--ignore-certificate-errors-spki-list=${[siteCert.cert, serverCert].map(spki).join(',')}`,
        'about:blank',
      ],
      { env: { ...process.env, DISPLAY: x.display }, stdio: ['ignore', 'ignore', 'pipe'] },
    );
    const endpoint = await new Promise<string>((resolveUrl, reject) => {
      let err = '';
      proc.stderr!.on('data', (d) => {
        err += d;
        const m = /DevTools listening on (ws:\S+)/.exec(err);
        if (m) resolveUrl(m[1]!);
      });
      proc.on('exit', (code) => reject(new Error(`chromium exited (${code}): ${err.slice(-2000)}`)));
    });
    browser = await chromium.connectOverCDP(endpoint);
    context = browser.contexts()[0]!;
    const worker = context.serviceWorkers()[0] ?? (await context.waitForEvent('serviceworker', { timeout: 30_000 }));
    const url = `chrome-extension://${new URL(worker.url()).host}/options.html`;
    options = await until('the first-run options page', async () => context.pages().find((p) => p.url() === url), 30_000);
    await options.waitForLoadState();
  });
  after(async () => {
    if (Object.values(timings).some((v) => v.length)) console.log('# extension prompt timings', JSON.stringify(timings));
    await browser?.close().catch(() => undefined);
    if (proc && proc.exitCode === null) {
      const gone = new Promise((r) => proc.once('exit', r));
      proc.kill();
      await gone;
    }
    await x?.close();
    await shop?.app.close();
    await t?.close();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  const cards = () => t.server.services.contacts.list(userId);
  const automatic = async () => ({
    granted: await options.evaluate((p) => chrome.permissions.contains(p), ALL_SITES),
    scripts: (await options.evaluate(() => chrome.scripting.getRegisteredContentScripts())).map((s) => `${s.id} ${s.matches.join(' ')}`),
  });

  async function signUp(address: string) {
    const page = await context.newPage();
    await page.goto(`https://shop.test:${shop.port}/signup`);
    await page.fill('#email', address);
    await page.fill('#password', 'a long new password');
    const sent = shop.sent.length;
    const started = Date.now();
    await page.click('button[type=submit]');
    await page.waitForURL(/\/signup\?from=$/);
    await page.close();
    return { sent, started };
  }

  /**
   * Clicks "Turn on automatic mode" (a trusted CDP click) and waits for Chromium's dialog on the X
   * screen: many pixels changed above the button (the page itself only moves the button's focus ring).
   */
  async function clickAndSeeDialog(): Promise<{ before: Screen; box: { x0: number; y0: number; x1: number; y1: number } }> {
    await options.bringToFront();
    const button = options.locator('#automatic-on');
    await button.waitFor();
    const at = await button.evaluate((b) => ({ top: b.getBoundingClientRect().top, chrome: window.outerHeight - window.innerHeight, y: window.screenY, x: window.screenX, w: window.outerWidth }));
    const box = { x0: at.x, y0: at.y, x1: at.x + at.w, y1: at.y + at.chrome + at.top - 8 };
    assert.ok(box.y1 - box.y0 > 400, `the button is low enough on the page to see the dialog above it (${JSON.stringify(at)})`);
    const before = x.screen();
    const clicked = Date.now();
    await button.click();
    await until('the permission dialog on the X screen', async () => changed(before, x.screen(), box) > 2_000, 20_000);
    timings['click → dialog on screen (ms)']!.push(Date.now() - clicked);
    // Chromium ignores input that comes right after a dialog appears (against click-jacking).
    await new Promise((r) => setTimeout(r, 1_000));
    return { before, box };
  }

  it('connects on the options page; manual mode: a sign-up creates no card and its confirmation is refused', async () => {
    await options.fill('#address', USER);
    await options.fill('#password', PASS);
    await options.fill('#server', t.server.http.url);
    await options.click('#connect button[type=submit]');
    await options.locator('#connect-message', { hasText: 'Connected' }).waitFor({ timeout: 20_000 });
    await options.locator('#mode-state', { hasText: 'Manual mode' }).waitFor();
    assert.deepEqual(await automatic(), { granted: false, scripts: [] });
    const { sent } = await signUp(USER);
    const refused = await until('the confirmation sent', async () => shop.sent[sent]);
    assert.equal(refused.code, 550, refused.response);
    assert.deepEqual(await cards(), []);
  });

  it('Deny in the real dialog (Return: Deny is the focused button) leaves manual mode', async () => {
    const { before, box } = await clickAndSeeDialog();
    x.xdotool('key', 'Return');
    await until('the dialog gone', async () => changed(before, x.screen(), box) < 200, 20_000);
    await options.locator('#mode-state', { hasText: 'Manual mode' }).waitFor();
    assert.deepEqual(await automatic(), { granted: false, scripts: [] });
  });

  it('Allow in the real dialog (Tab, Return): the permission is held, the content script registered, a sign-up creates the card and mail reaches INBOX', async () => {
    await clickAndSeeDialog();
    if (SCREENSHOTS) x.png(join(SCREENSHOTS, 'ext-permission-prompt.png'));
    x.xdotool('key', 'Tab');
    await new Promise((r) => setTimeout(r, 300));
    const allowed = Date.now();
    x.xdotool('key', 'Return');
    await options.locator('#mode-state', { hasText: 'Automatic mode is on' }).waitFor({ timeout: 20_000 });
    await until('the content script registered', async () => (await automatic()).scripts.length > 0);
    timings['Allow → content script registered (ms)']!.push(Date.now() - allowed);
    assert.deepEqual(await automatic(), { granted: true, scripts: ['sign-up-forms https://*/*'] });

    const { sent, started } = await signUp('prompted+shop@example.test');
    const card = await until('the card for shop.test', async () => (await cards()).find((c) => c.entries.some((e) => e.kind === 'expect' && e.value === 'shop.test')));
    timings['submit → card stored (ms)']!.push(Date.now() - started);
    assert.match(card.vcard, /PRODID:-\/\/twoway\/\/browser extension\/\/EN/);
    const confirmation = await until('the confirmation sent', async () => shop.sent[sent]);
    assert.equal(confirmation.code, 250, confirmation.response);
    await until('the confirmation in INBOX', async () => (await t.server.services.mail.list(userId)).some((m) => m.mailbox === 'INBOX' && m.subject === 'Confirm your shop.test account'));
  });
});
