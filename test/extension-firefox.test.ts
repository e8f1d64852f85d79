/**
 * The extension in Debian's Firefox ESR, driven over WebDriver BiDi with
 * puppeteer-core: the package npm run build:extension makes installs as a
 * temporary add-on (installExtension) under the gecko id of the manifest,
 * then the flow past install: connect on the options page the extension
 * opens at first run, sign up on the test's site (the content script sees
 * it), the card stored, the DKIM-signed confirmation in INBOX (user in
 * strict mode), the popup's entry.
 *
 * How the extension's own pages are reached: Firefox's BiDi leaves out
 * every extension context (moz-extension:// documents are not listed,
 * navigating to one is refused: "Navigation to moz-extension://… is not
 * allowed in this context", Mozilla bug 1755014). Started with
 * -remote-allow-system-access, BiDi also reaches the browser's own chrome
 * window ("moz:scope": "chrome"), and with extensions.webextensions.remote
 * false the extension's pages run in that same process, so a script in the
 * chrome window fills in the options page the extension opened itself and
 * clicks its button: real DOM events on the real page. The site's page is
 * an ordinary tab, driven with puppeteer's page API. Details in
 * docs/extension.md ("Tests").
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import puppeteer, { type Browser } from 'puppeteer-core';
import { createPrivateCa, issueCertificate } from '../src/config/private-ca.ts';
import { dkimDomain, type Shop, startShop, until } from './helpers/extension-site.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';

const FIREFOX = process.env.TWOWAY_FIREFOX ?? '/usr/bin/firefox-esr';
const skip = !existsSync(FIREFOX) && !process.env.CI ? `no browser at ${FIREFOX} (apt-get install firefox-esr)` : undefined;
const GECKO_ID = 'extension@twoway.invalid';
const USER = 'strict@example.test';
const PASS = 'strict-password-1';
const SITES = ['shop.test'];
const keys = Object.fromEntries(SITES.map((d) => [d, dkimDomain(d)]));

/** The raw BiDi connection puppeteer-core holds (for the chrome-scope commands it has no API for). */
interface Bidi {
  send(method: string, params: unknown): Promise<{ result: unknown }>;
}

describe('the extension in firefox-esr', { skip }, () => {
  let out: string;
  let browser: Browser;
  let t: TestServer;
  let shop: Shop;
  let userId: number;
  let uuid: string;
  let chromeContext: string;
  const timings: Record<string, number[]> = { 'submit → card stored (ms)': [], 'confirmation sent → INBOX (ms)': [] };

  before(async () => {
    t = await startTestServer({ records: SITES.flatMap((d) => keys[d]!.records) });
    userId = (await t.server.services.accounts.add(USER, PASS, 'strict')).id;
    const ca = createPrivateCa('twoway extension test CA');
    shop = await startShop(t.server.smtp.port, issueCertificate(ca, SITES), keys);
    out = mkdtempSync(join(tmpdir(), 'twoway-ext-ff-'));
    const built = spawnSync(process.execPath, ['scripts/build-extension.mjs', '--out', out], { encoding: 'utf8' });
    assert.equal(built.status, 0, built.stderr);
    browser = await puppeteer.launch({
      browser: 'firefox',
      protocol: 'webDriverBiDi',
      executablePath: FIREFOX,
      headless: true,
      // The site's private CA and the test server's self-signed certificate.
      acceptInsecureCerts: true,
      args: ['-remote-allow-system-access'],
      extraPrefsFirefox: {
        // The extension's pages in the parent process, where the chrome window's script reaches them.
        'extensions.webextensions.remote': false,
        // shop.test (and every other name) is 127.0.0.1: Firefox's --host-resolver-rules.
        'network.dns.forceResolve': '127.0.0.1',
      },
    });
  });
  after(async () => {
    if (Object.values(timings).some((v) => v.length)) console.log('# extension flow timings (firefox)', JSON.stringify(timings));
    await browser?.close();
    await shop?.app.close();
    await t?.close();
    if (out) rmSync(out, { recursive: true, force: true });
  });

  const bidi = () => (browser as unknown as { connection: Bidi }).connection;
  /** Runs an async function body in the browser's chrome window and returns its JSON result. */
  async function inChrome<T>(body: string, args: Record<string, unknown> = {}): Promise<T> {
    const expression = `(async (args) => JSON.stringify(await (async () => { ${body} })()))(${JSON.stringify(args)})`;
    const { result } = (await bidi().send('script.evaluate', { expression, target: { context: chromeContext }, awaitPromise: true, resultOwnership: 'none' })) as {
      result: { type: string; result?: { value: string }; exceptionDetails?: { text: string } };
    };
    if (result.type !== 'success') throw new Error(`chrome script failed: ${result.exceptionDetails?.text}`);
    return JSON.parse(result.result!.value) as T;
  }
  /** The document of the tab showing moz-extension://<uuid>/<path> (in-process: extensions.webextensions.remote false). */
  const docOf = (path: string) =>
    `const tab = gBrowser.tabs.find((t) => t.linkedBrowser.currentURI.spec === 'moz-extension://' + args.uuid + '/${path}');
     const doc = tab?.linkedBrowser.contentDocument;
     if (!doc || doc.readyState !== 'complete') return null;`;

  const cards = () => t.server.services.contacts.list(userId);
  /** When the server stored the message with that subject in INBOX (its receivedAt), not when the test looked. */
  const storedAt = async (subject: string) => {
    const m = (await t.server.services.mail.list(userId)).find((x) => x.mailbox === 'INBOX' && x.subject === subject);
    return m ? m.receivedAt.getTime() : null;
  };

  it('installs as a temporary add-on over BiDi under the manifest gecko id, and opens its options page', async () => {
    const id = await browser.installExtension(join(out, 'extension'));
    assert.equal(id, GECKO_ID);
    const tree = (await bidi().send('browsingContext.getTree', { 'moz:scope': 'chrome' })) as { result: { contexts: { context: string; url: string }[] } };
    chromeContext = tree.result.contexts.find((c) => c.url === 'chrome://browser/content/browser.xhtml')!.context;
    uuid = await inChrome<string>('return WebExtensionPolicy.getByID(args.id).mozExtensionHostname;', { id: GECKO_ID });
    assert.match(uuid, /^[0-9a-f-]{36}$/);
    // The first-run tab (runtime.openOptionsPage in onInstalled), which BiDi does not list: reached from the chrome window.
    const title = await until('the options page opened at install', () => inChrome<string | null>(`${docOf('options.html')} return doc.title;`, { uuid }));
    assert.equal(title, 'twoway: options');
  });

  it('connects once on the options page: a contacts app password', async () => {
    await inChrome(
      `${docOf('options.html')}
       const field = (id, value) => { const el = doc.getElementById(id); el.focus(); el.value = value; el.dispatchEvent(new doc.defaultView.Event('input', { bubbles: true })); };
       field('address', args.user); field('password', args.pass); field('server', args.server);
       doc.querySelector('#connect button[type=submit]').click();
       return true;`,
      { uuid, user: USER, pass: PASS, server: t.server.http.url },
    );
    const message = await until('connected', () => inChrome<string | null>(`${docOf('options.html')} const m = doc.getElementById('connect-message').textContent; return m.startsWith('Connected') || m.startsWith('Not connected') ? m : null;`, { uuid }));
    assert.match(message, /^Connected: cards go to https:\/\/127\.0\.0\.1:\d+\/dav\/addressbooks\/strict%40example\.test\/default\/$/);
    const apps = await t.server.services.accounts.listAppPasswords(await t.server.services.accounts.get(USER));
    assert.deepEqual(
      apps.map((a) => [a.name, a.scope]),
      [['browser extension', 'contacts']],
    );
    // The state line follows the stored connection (a storage change), a moment after the message.
    const expected = `|Connected as ${USER} to ${t.server.http.url}`;
    const read = () => inChrome<string>(`${docOf('options.html')} return doc.getElementById('password').value + '|' + doc.getElementById('state').textContent;`, { uuid });
    const stateText = await until('the connection state', async () => ((await read()) === expected ? expected : null), 5_000).catch(read);
    assert.equal(stateText, expected, 'the password field is cleared');
  });

  it("automatic mode: the optional permission for all sites, asked for on the options page and allowed in the browser's prompt", async () => {
    const state = () => inChrome<string | null>(`${docOf('options.html')} return doc.getElementById('mode-state').textContent;`, { uuid });
    assert.match((await until('the mode', state)) ?? '', /^Manual mode/);
    // permissions.request needs a user gesture: the click is made while the page handles user input.
    await inChrome(
      `${docOf('options.html')}
       gBrowser.selectedTab = tab;
       // The click as the user's own input, as Firefox marks a click on its own UI (ExtensionCommon's withHandlingUserInput).
       const handle = doc.defaultView.windowUtils.setHandlingUserInput(true);
       try { doc.getElementById('automatic-on').click(); } finally { handle.destruct(); }
       return true;`,
      { uuid },
    );
    // The browser's own prompt ("… read and change your data on all websites"): the user allows it.
    const shown = await until('the permission prompt', () =>
      inChrome<string | null>(
        `for (const t of gBrowser.tabs) {
           const n = PopupNotifications.getNotification('addon-webext-permissions', t.linkedBrowser);
           if (n) { n.mainAction.callback({}); n.remove(); return 'allowed'; }
         }
         return null;`,
      ),
    );
    assert.equal(shown, 'allowed');
    assert.match((await until('automatic mode on', async () => ((await state()) ?? '').startsWith('Automatic') && (await state()))) || '', /^Automatic mode is on/);
  });

  it('sign up on the site: the card is stored, the confirmation reaches INBOX, the popup shows the entry', async () => {
    const page = await browser.newPage();
    await page.goto(`https://shop.test:${shop.port}/signup`);
    await page.type('#email', 'strict+ff@example.test');
    await page.type('#password', 'a long new password');
    const started = Date.now();
    await page.click('button[type=submit]');
    const card = await until('the card for shop.test', async () => (await cards()).find((c) => c.entries.some((e) => e.kind === 'expect' && e.value === 'shop.test')));
    timings['submit → card stored (ms)']!.push(Date.now() - started);
    assert.match(card.vcard.replace(/\r\n[ \t]/g, ''), /\r\nX-TWOWAY-EXPECT;PURPOSE=ownership-confirmation;UNTIL=\d{8}T\d{6}Z;USES=3:shop\.test\r\n/);
    assert.match(card.vcard, /PRODID:-\/\/twoway\/\/browser extension\/\/EN/);
    const sent = await until('the confirmation sent', async () => shop.sent[0]);
    assert.equal(sent.code, 250, sent.response);
    const seen = await until('the confirmation in INBOX', () => storedAt('Confirm your shop.test account'));
    timings['confirmation sent → INBOX (ms)']!.push(seen - sent.at);
    await page.close();

    // The popup, opened as a tab of the extension (the toolbar panel is not reachable either): the entry read back.
    await inChrome("gBrowser.selectedTab = gBrowser.addTab('moz-extension://' + args.uuid + '/popup.html', { triggeringPrincipal: Services.scriptSecurityManager.getSystemPrincipal() }); return true;", { uuid });
    const terms = await until('the entry in the popup', () =>
      inChrome<string | null>(`${docOf('popup.html')} const li = [...doc.querySelectorAll('.entry')].find((e) => e.dataset.site === 'shop.test'); const s = li?.querySelector('.terms').textContent; return s && s.includes('2 uses left') ? s : null;`, { uuid }),
    );
    assert.match(terms, /^1 h 5\d min left, 2 uses left$/);
  });
});
