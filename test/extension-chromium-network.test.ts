/**
 * What the extension sends, and to whom, read from the traffic of a real
 * Chromium (docs/extension.md, "What is sent where"). Chromium goes through
 * a recording proxy (`--proxy-server`, `--proxy-bypass-list=<-loopback>`, so
 * the loopback server too) that writes down every host it connects to;
 * CDP Network events on the extension's service worker, its options page,
 * its popup and the sign-up tab (where the content script runs) record
 * every request with its body; the messages the service worker receives are
 * recorded at the extension's message boundary by a listener added over
 * CDP Runtime (it reports each one as a console.debug event), with the sender as Chromium gives it (a content
 * script's sender has a tab). Connect, sign up on www.shop.test (a page with
 * a name, a hidden token, a cookie and a query string, all marked
 * PAGE_SECRET), the card PUT, the popup's read-back and Remove: the proxy
 * saw exactly the user's server and the site's own page; the extension's
 * contexts asked only the server; the content script sent the host name,
 * the declaration, the submitted address and the kind of form, and the card
 * the registrable domain and the declared domain. The last test shows the
 * recording is not blind: a request to another host made from the worker
 * and from the content script's world shows up in both records.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BrowserContext, CDPSession, Page } from 'playwright-core';
import { createPrivateCa, issueCertificate } from '../src/config/private-ca.ts';
import { browserSkip } from './helpers/browser.ts';
import { davFetch } from './helpers/carddav.ts';
import { attachTarget, type TargetSession } from './helpers/cdp-target.ts';
import { buildExtension, dkimDomain, launchChromium, PAGE_SECRET, type Shop, startShop, until } from './helpers/extension-site.ts';
import { type RecordingProxy, startRecordingProxy } from './helpers/recording-proxy.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';

const USER = 'watched@example.test';
const PASS = 'watched-password-1';
const SIGNED_UP = 'watched+shop@example.test';
const PAGE_HOST = 'www.shop.test';
const SITES = ['shop.test', PAGE_HOST, 'mailer.test'];
const keys = { 'mailer.test': dkimDomain('mailer.test') };

/**
 * The browser's own services that a form page would wake, turned off in the profile so that the
 * proxy's record holds only what the pages and the extension asked for: the password manager
 * (its leak check posts to passwordsleakcheck-pa.googleapis.com at a submit with a password),
 * autofill (content-autofill.googleapis.com), browser sign-in (accounts.google.com).
 */
const QUIET_PREFERENCES = {
  credentials_enable_service: false,
  profile: { password_manager_enabled: false, password_manager_leak_detection: false },
  autofill: { enabled: false, profile_enabled: false, credit_card_enabled: false },
  signin: { allowed: false },
};

/**
 * What this Chromium asks for by itself, whatever the pages and the extension do (in every run:
 * update.googleapis.com once at start, the component and extension updater's check despite
 * --disable-component-update; accounts.google.com at start and again every few seconds, Google
 * sign-in even with the profile's signin.allowed off). The proxy refuses both; the test checks that no page and
 * no extension context asked for them (CDP), so the extension cannot hide behind this list.
 */
const BROWSER_OWN = ['update.googleapis.com', 'accounts.google.com'];

interface Seen {
  /** Which context made it: 'service worker', 'options', 'popup', 'site'. */
  by: string;
  method: string;
  url: string;
  headers: Record<string, string>;
  body: string;
  initiator: string;
}
interface Received {
  message: Record<string, unknown>;
  /** sender.url (the page's for a content script, the extension page's own otherwise) and sender.tab's URL. */
  url: string | null;
  tab: string | null;
}

describe('what the extension sends, from the network (chromium)', { skip: browserSkip }, () => {
  let t: TestServer;
  let shop: Shop;
  let proxy: RecordingProxy;
  let context: BrowserContext;
  let extId: string;
  let firstRun: Page;
  let cdp: CDPSession;
  let worker: TargetSession;
  let server: URL;
  let userId: number;
  const dirs: string[] = [];
  const requests: Seen[] = [];
  const received: Received[] = [];
  const workerStarts: string[] = [];

  const record = (by: string) => (p: { request: { method: string; url: string; headers: Record<string, string>; postData?: string }; initiator: { type: string; url?: string; stack?: { callFrames: { url: string }[] } } }) => {
    const initiator = p.initiator.url ?? p.initiator.stack?.callFrames[0]?.url ?? p.initiator.type;
    requests.push({ by, method: p.request.method, url: p.request.url, headers: p.request.headers, body: p.request.postData ?? '', initiator });
  };
  /** Records a page's requests from its first one: the session is made before the page navigates. */
  async function watched(by: string, page?: Page): Promise<Page> {
    const p = page ?? (await context.newPage());
    const s = await context.newCDPSession(p);
    s.on('Network.requestWillBeSent', record(by) as never);
    await s.send('Network.enable', { maxPostDataSize: 65_536 } as never);
    return p;
  }

  before(async () => {
    t = await startTestServer({ records: keys['mailer.test'].records });
    userId = (await t.server.services.accounts.add(USER, PASS, 'strict')).id;
    const siteCert = issueCertificate(createPrivateCa('twoway extension test CA'), SITES);
    shop = await startShop(t.server.smtp.port, siteCert, keys);
    server = new URL(t.server.http.url);
    // The proxy tunnels the test's own servers only; anything else is written down and refused.
    proxy = await startRecordingProxy((host, port) => (host === server.hostname && port === Number(server.port)) || (SITES.includes(host) && port === shop.port));
    // Automatic mode granted at install, as in test/extension-chromium.test.ts: the content script runs on the site.
    const ext = buildExtension(dirs, { grantAllSites: true });
    const profile = mkdtempSync(join(tmpdir(), 'twoway-ext-profile-'));
    dirs.push(profile);
    mkdirSync(join(profile, 'Default'));
    writeFileSync(join(profile, 'Default', 'Preferences'), JSON.stringify(QUIET_PREFERENCES));
    const { ca: serverCert } = davFetch(t);
    ({ context, extId, firstRun } = await launchChromium(ext, profile, SITES, [siteCert.cert, serverCert], [`--proxy-server=http://127.0.0.1:${proxy.port}`, '--proxy-bypass-list=<-loopback>']));
    await watched('options', firstRun);

    cdp = await context.browser()!.newBrowserCDPSession();
    const workerUrl = `chrome-extension://${extId}/background.js`;
    const { targetInfos } = (await cdp.send('Target.getTargets')) as { targetInfos: { type: string; url: string; targetId: string }[] };
    const target = targetInfos.find((x) => x.type === 'service_worker' && x.url === workerUrl);
    assert.ok(target, 'the extension service worker is running');
    // A second start of the worker would run without the message listener below: noted, and the last test fails on it.
    cdp.on('Target.targetCreated', (e: { targetInfo: { type: string; url: string; targetId: string } }) => {
      if (e.targetInfo.type === 'service_worker' && e.targetInfo.url === workerUrl && e.targetInfo.targetId !== target.targetId) workerStarts.push(e.targetInfo.targetId);
    });
    worker = await attachTarget(cdp, target.targetId);
    worker.on('Network.requestWillBeSent', record('service worker'));
    // The recording listener below reports each message as a console.debug call, a Runtime event of this session.
    worker.on('Runtime.consoleAPICalled', (p: { type: string; args: { value?: unknown }[] }) => {
      if (p.type === 'debug' && p.args[0]?.value === 'twoway-recorded-message') received.push(JSON.parse(String(p.args[1]?.value)) as Received);
    });
    await cdp.send('Target.setDiscoverTargets', { discover: true });
    await worker.send('Network.enable', { maxPostDataSize: 65_536 });
    await worker.send('Runtime.enable');
    // One more onMessage listener: it answers nothing (returns undefined), so the extension's own listener still answers.
    const installed = await worker.send<{ result: { value: string } }>('Runtime.evaluate', {
      expression: `chrome.runtime.onMessage.addListener((message, sender) => { console.debug('twoway-recorded-message', JSON.stringify({ message, url: sender.url ?? null, tab: sender.tab?.url ?? null })); }); globalThis.twowayRecorder = 'on'`,
      returnByValue: true,
    });
    assert.equal(installed.result.value, 'on');
  });
  after(async () => {
    await worker?.detach();
    await context?.close();
    await proxy?.close();
    await shop?.app.close();
    await t?.close();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  const web = (r: Seen) => r.url.startsWith('http:') || r.url.startsWith('https:');
  const fromExtension = () => requests.filter((r) => r.by !== 'site' && web(r));
  const cards = () => t.server.services.contacts.list(userId);

  it('connect: the options page hands the password to the worker, which signs in at the server', async () => {
    await firstRun.fill('#address', USER);
    await firstRun.fill('#password', PASS);
    await firstRun.fill('#server', t.server.http.url);
    await firstRun.click('#connect button[type=submit]');
    await firstRun.locator('#connect-message', { hasText: 'Connected' }).waitFor({ timeout: 60_000 });
    const signIn = fromExtension().filter((r) => r.method === 'POST');
    assert.deepEqual(
      signIn.map((r) => [r.by, r.url]),
      [['service worker', `${server.origin}/api/me/app-passwords`]],
    );
    assert.deepEqual(JSON.parse(signIn[0]!.body), { name: 'browser extension', scope: 'contacts' });
  });

  it('sign-up: the content script sends the host name, the declaration, the address and the kind; the PUT carries the two domains', async () => {
    const page = await watched('site');
    await page.goto(`https://${PAGE_HOST}:${shop.port}/rich/signup?ref=${PAGE_SECRET}-query`);
    await page.fill('#fullname', `${PAGE_SECRET}-name`);
    await page.fill('#email', SIGNED_UP);
    await page.fill('#password', `${PAGE_SECRET}-password`);
    await page.click('button[type=submit]');
    const card = await until('the card for shop.test', async () => (await cards()).find((c) => c.entries.some((e) => e.kind === 'expect' && e.value === 'shop.test')));
    await page.close();

    // A content script's sender.url is the page's; the extension's own pages (also in tabs) have theirs.
    const fromContent = received.filter((r) => !r.url?.startsWith(`chrome-extension://${extId}/`));
    assert.ok(fromContent.length >= 2, `the content script's messages were recorded: ${JSON.stringify(received)}`);
    for (const r of fromContent) assert.equal(new URL(r.tab!).host, `${PAGE_HOST}:${shop.port}`, 'a content script message comes from the sign-up tab');
    // At page load the content script asks for the user's addresses; at the submit it sends this, and nothing else.
    const expected = { type: 'expect', host: PAGE_HOST, declarations: ['mailer.test'], address: SIGNED_UP, trigger: 'signup' };
    for (const r of fromContent) {
      if (r.message.type === 'addresses') assert.deepEqual(r.message, { type: 'addresses' });
      else assert.deepEqual(r.message, expected);
    }
    assert.equal(fromContent.filter((r) => r.message.type === 'expect').length, 1);

    const puts = fromExtension().filter((r) => r.method === 'PUT');
    assert.equal(puts.length, 1);
    const put = puts[0]!;
    assert.equal(put.by, 'service worker');
    assert.equal(put.url, `${server.origin}/dav/addressbooks/${encodeURIComponent(USER)}/default/${card.uid}.vcf`);
    assert.equal(put.headers['If-None-Match'] ?? put.headers['if-none-match'], '*');
    // The card: the registrable domain (not the page's host name), the declared domain, the terms.
    const lines = put.body.replace(/\r\n[ \t]/g, '').replace(/\r\n$/, '').split('\r\n');
    assert.deepEqual(lines.map((l) => l.split(/[:;]/)[0]), ['BEGIN', 'VERSION', 'UID', 'FN', 'PRODID', 'X-TWOWAY-EXPECT', 'END']);
    assert.equal(lines[3], 'FN:shop.test (expected)');
    assert.match(lines[5]!, /^X-TWOWAY-EXPECT;PURPOSE=ownership-confirmation;UNTIL=\d{8}T\d{6}Z;USES=3;FROM=mailer\.test:shop\.test$/);
    assert.equal(put.body.includes(PAGE_HOST), false, 'the page host name stays in the browser');
    assert.equal(put.body.includes(SIGNED_UP), false, 'the address stays in the browser');
  });

  it('the popup reads the card back and Remove deletes it, at the server', async () => {
    const popup = await watched('popup');
    await popup.goto(`chrome-extension://${extId}/popup.html`);
    const entry = popup.locator('.entry', { hasText: 'shop.test (and mailer.test)' });
    await entry.locator('.terms', { hasText: 'uses left' }).waitFor();
    const uid = await entry.getAttribute('data-uid');
    await entry.locator('button.remove').click();
    await until('the card deleted', async () => !(await cards()).some((c) => c.uid === uid));
    await popup.close();
    const card = `${server.origin}/dav/addressbooks/${encodeURIComponent(USER)}/default/${uid}.vcf`;
    assert.ok(fromExtension().some((r) => r.method === 'GET' && r.url === card), 'the card read back');
    assert.ok(fromExtension().some((r) => r.method === 'DELETE' && r.url === card), 'the card deleted');
  });

  it('nothing went anywhere but the user server and the site itself', () => {
    const start = proxy.records[0]?.at ?? 0;
    const seen = JSON.stringify(proxy.records.map((r) => ({ ...r, at: r.at - start })));
    const hosts = [...new Set(proxy.records.filter((r) => !BROWSER_OWN.includes(r.host)).map((r) => `${r.method} ${r.host}:${r.port}`))].sort();
    assert.deepEqual(hosts, [`CONNECT ${server.hostname}:${server.port}`, `CONNECT ${PAGE_HOST}:${shop.port}`].sort(), `every connection the browser opened: ${seen}`);
    for (const r of proxy.records) assert.equal(r.forwarded, !BROWSER_OWN.includes(r.host), `${r.host}: tunnelled to the test's servers only`);
    for (const r of requests) assert.equal(BROWSER_OWN.includes(new URL(r.url).hostname), false, `${r.by} asked for ${r.url}`);
    const mine = fromExtension();
    assert.ok(mine.length >= 4);
    for (const r of mine) assert.equal(new URL(r.url).origin, server.origin, `${r.by}: ${r.method} ${r.url}`);
    assert.deepEqual([...new Set(mine.map((r) => r.by))], ['service worker'], 'only the worker talks to the server');
    // The sign-up tab: the page's own document, form post and the tab's icon, none started by the content script.
    const site = requests.filter((r) => r.by === 'site' && web(r));
    assert.deepEqual(
      site.map((r) => `${r.method} ${new URL(r.url).pathname}`).filter((r) => r !== 'GET /favicon.ico'),
      ['GET /rich/signup', 'POST /signup'],
    );
    for (const r of site) assert.equal(new URL(r.url).host, `${PAGE_HOST}:${shop.port}`);
    for (const r of site) assert.equal(r.initiator.startsWith('chrome-extension:'), false, `${r.url} initiated by ${r.initiator}`);
    // No page data in anything the extension sent, nor in what the content script told the worker.
    for (const r of mine) assert.equal(JSON.stringify(r).includes(PAGE_SECRET), false, `${r.method} ${r.url}`);
    // (sender.url and sender.tab are Chromium's own note of where a message came from, not its content.)
    assert.equal(JSON.stringify(received.map((r) => r.message)).includes(PAGE_SECRET), false);
  });

  it('the records are not blind: a request to another host from the worker or the content script shows in both', async () => {
    assert.deepEqual(workerStarts, [], 'the worker ran once (its message listener was there throughout)');
    const state = await worker.send<{ result: { value: string } }>('Runtime.evaluate', { expression: 'globalThis.twowayRecorder', returnByValue: true });
    assert.equal(state.result.value, 'on');
    await worker.send('Runtime.evaluate', { expression: `fetch('https://elsewhere.test/from-worker').catch(() => null).then(() => 'done')`, awaitPromise: true });
    // The content script's own world (an isolated world named after the extension) on a fresh sign-up tab.
    const page = await watched('site');
    const s = await context.newCDPSession(page);
    const worlds: { id: number; origin: string; auxData?: { type?: string } }[] = [];
    s.on('Runtime.executionContextCreated', (e: { context: (typeof worlds)[number] }) => void worlds.push(e.context));
    await s.send('Runtime.enable');
    await page.goto(`https://${PAGE_HOST}:${shop.port}/rich/signup`);
    const world = await until('the content script world', async () => worlds.find((w) => w.auxData?.type === 'isolated' && w.origin === `chrome-extension://${extId}`));
    await s.send('Runtime.evaluate', { contextId: world.id, expression: `fetch('https://elsewhere-too.test/from-content-script').catch(() => null).then(() => 'done')`, awaitPromise: true });
    await page.close();
    const refused = proxy.records.filter((r) => !r.forwarded).map((r) => `${r.host}:${r.port}`);
    assert.ok(refused.includes('elsewhere.test:443') && refused.includes('elsewhere-too.test:443'), `the proxy saw ${refused.join(', ')}`);
    assert.ok(requests.some((r) => r.by === 'service worker' && r.url === 'https://elsewhere.test/from-worker'));
    assert.ok(requests.some((r) => r.by === 'site' && r.url === 'https://elsewhere-too.test/from-content-script'));
  });
});
