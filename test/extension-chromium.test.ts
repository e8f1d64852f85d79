/**
 * The browser extension in Debian's Chromium (playwright-core, headless=new,
 * --load-extension), in automatic mode (content script on https sites; see
 * the note in before() on how the optional permission is granted here;
 * the manual mode is test/extension-chromium-manual.test.ts): a real sign-up site (fastify over HTTPS with a
 * certificate from a private CA, its names mapped by --host-resolver-rules)
 * whose mailer sends DKIM-signed confirmations (nodemailer) over SMTP to the
 * user's twoway server, user in strict mode, DKIM/SPF/DMARC in the embedded
 * DNS server. Connect, sign up, the card (read back with tsdav), INBOX, the
 * fourth message refused with the strict-mode 550, a declared provider
 * domain, an entry past its time. Timings are printed (TWOWAY_TIMINGS-style
 * diagnostics, never asserted).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BrowserContext, Page } from 'playwright-core';
import { createPrivateCa, issueCertificate } from '../src/config/private-ca.ts';
import { browserSkip } from './helpers/browser.ts';
import { davFetch, tsdavClient } from './helpers/carddav.ts';
import { buildExtension, dkimDomain, launchChromium, type Sent, type Shop, startShop, until } from './helpers/extension-site.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';

const USER = 'strict@example.test';
const PASS = 'strict-password-1';
const SITES = ['shop.test', 'mailer.test', 'late.test'];
/** The extension API as the extension's own pages see it (no @types/chrome here). */
declare const chrome: { storage: { local: { get(key: string): Promise<Record<string, unknown>> } }; runtime: { sendMessage(m: unknown): Promise<unknown> } };

const keys = Object.fromEntries(SITES.map((d) => [d, dkimDomain(d)]));

describe('the extension in chromium', { skip: browserSkip }, () => {
  let t: TestServer;
  let shop: Shop;
  let context: BrowserContext;
  let extId: string;
  let firstRun: Page;
  let userId: number;
  const dirs: string[] = [];
  const timings: Record<string, number[]> = { 'submit → card stored (ms)': [], 'confirmation sent → INBOX (ms)': [] };

  before(async () => {
    t = await startTestServer({ records: SITES.flatMap((d) => keys[d]!.records) });
    userId = (await t.server.services.accounts.add(USER, PASS, 'strict')).id;
    const ca = createPrivateCa('twoway extension test CA');
    const siteCert = issueCertificate(ca, SITES);
    shop = await startShop(t.server.smtp.port, siteCert, keys);
    // Automatic mode granted at install (buildExtension); test/extension-chromium-manual.test.ts runs the
    // package as built, and Firefox's test grants the optional permission in the real prompt.
    const ext = buildExtension(dirs, { grantAllSites: true });
    const profile = mkdtempSync(join(tmpdir(), 'twoway-ext-profile-'));
    dirs.push(profile);
    const { ca: serverCert } = davFetch(t);
    ({ context, extId, firstRun } = await launchChromium(ext, profile, SITES, [siteCert.cert, serverCert]));
  });
  after(async () => {
    if (Object.values(timings).some((v) => v.length)) console.log('# extension flow timings', JSON.stringify(timings));
    await context?.close();
    await shop?.app.close();
    await t?.close();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  const cards = () => t.server.services.contacts.list(userId);
  const inbox = async () => (await t.server.services.mail.list(userId)).filter((m) => m.mailbox === 'INBOX').map((m) => m.subject);
  /** When the server stored the message with that subject in INBOX (its receivedAt), not when the test looked. */
  const storedAt = async (subject: string) => {
    const m = (await t.server.services.mail.list(userId)).find((x) => x.mailbox === 'INBOX' && x.subject === subject);
    return m ? m.receivedAt.getTime() : null;
  };
  const extPage = async (path: string) => {
    const page = await context.newPage();
    await page.goto(`chrome-extension://${extId}/${path}`);
    return page;
  };

  /** Signs up on a page of the site and returns when the card is stored, with the timing recorded. */
  async function signUp(url: string, address: string, site: string) {
    const page = await context.newPage();
    await page.goto(url);
    await page.fill('#email', address);
    await page.fill('#password', 'a long new password');
    const before = new Set((await cards()).map((c) => c.uid));
    const started = Date.now();
    await page.click('button[type=submit]');
    const card = await until(`the card for ${site}`, async () => (await cards()).find((c) => !before.has(c.uid) && c.entries.some((e) => e.kind === 'expect' && e.value === site)));
    timings['submit → card stored (ms)']!.push(Date.now() - started);
    await page.close();
    return card;
  }
  async function delivered(subject: string, sentIndex: number) {
    const record = await until('the confirmation sent', async () => shop.sent[sentIndex]);
    assert.equal(record.code, 250, record.response);
    const seen = await until(`${subject} in INBOX`, () => storedAt(subject));
    timings['confirmation sent → INBOX (ms)']!.push(seen - record.at);
  }

  it('connects once: a contacts app password is created and kept in extension storage', async () => {
    const page = firstRun; // opened by the extension at install
    await page.fill('#address', USER);
    await page.fill('#password', PASS);
    await page.fill('#server', t.server.http.url);
    await page.click('#connect button[type=submit]');
    await page.locator('#connect-message', { hasText: 'Connected' }).waitFor({ timeout: 20_000 });
    const apps = await t.server.services.accounts.listAppPasswords(await t.server.services.accounts.get(USER));
    assert.deepEqual(apps.map((a) => [a.name, a.scope]), [['browser extension', 'contacts']]);
    const stored = await page.evaluate(() => chrome.storage.local.get('connection'));
    assert.match(String((stored.connection as { appPassword: string }).appPassword), /^twp_/);
    assert.equal(JSON.stringify(stored).includes(PASS), false, 'the account password is not kept');
    await page.close();
  });

  it('sign up: the card appears (read with tsdav), the confirmation reaches INBOX, the 4th message gets the strict 550', async () => {
    const card = await signUp(`https://shop.test:${shop.port}/signup`, 'strict+shop@example.test', 'shop.test');
    const { fetch: f, close } = davFetch(t);
    try {
      const client = await tsdavClient(t, f, USER, PASS);
      const [book] = await client.fetchAddressBooks();
      const vcards = await client.fetchVCards({ addressBook: book! });
      const mine = vcards.find((v) => String(v.data).includes(`UID:${card.uid}`));
      // USES=2 when the confirmation (sent 1.5 s after the sign-up) was already admitted: the count is checked below.
      assert.match(String(mine?.data).replace(/\r\n[ \t]/g, ''), /\r\nX-TWOWAY-EXPECT;PURPOSE=ownership-confirmation;UNTIL=\d{8}T\d{6}Z;USES=[23]:shop\.test\r\n/);
      assert.match(String(mine?.data), /PRODID:-\/\/twoway\/\/browser extension\/\/EN/);
    } finally {
      await close();
    }
    await delivered('Confirm your shop.test account', 0);
    // "Resend the confirmation", three times: the entry admits 3 messages in all.
    const shopPost = async (domain: string) => {
      const r = await shop.app.inject({ method: 'POST', url: '/resend', payload: { email: 'strict+shop@example.test', domain } });
      return JSON.parse(r.body) as Sent;
    };
    assert.equal((await shopPost('shop.test')).code, 250);
    assert.equal((await shopPost('shop.test')).code, 250);
    const fourth = await shopPost('shop.test');
    assert.equal(fourth.code, 550, fourth.response);
    assert.match(fourth.response, /5\.7\.1 This mailbox accepts mail only from its contacts/);
    assert.equal((await inbox()).filter((s) => s === 'Confirm your shop.test account').length, 3);

    const popup = await extPage('popup.html');
    await popup.locator('.entry', { hasText: 'shop.test' }).locator('.terms', { hasText: 'used up or expired' }).waitFor();
    await popup.locator('#state', { hasText: `connected as ${USER}` }).waitFor();
    await popup.close();
  });

  it('a site that declares its mail provider: mail from the declared domain is admitted', async () => {
    const card = await signUp(`https://shop.test:${shop.port}/provider/signup`, USER, 'shop.test');
    assert.match(card.vcard.replace(/\r\n[ \t]/g, ''), /;USES=3;FROM=mailer\.test:shop\.test\r\n/);
    await delivered('Confirm your mailer.test account', shop.sent.length);
    const popup = await extPage('popup.html');
    await popup.locator('.entry', { hasText: 'shop.test (and mailer.test)' }).locator('.terms', { hasText: '2 uses left' }).waitFor();
    // Remove: the card is deleted over CardDAV.
    await popup.locator('.entry', { hasText: 'shop.test (and mailer.test)' }).locator('button.remove').first().click();
    await until('the card deleted', async () => !(await cards()).some((c) => c.uid === card.uid));
    await popup.close();
  });

  it('an entry past its time admits nothing', async () => {
    const page = await extPage('options.html');
    // 2 seconds: far below what the options form allows, set through the same message it sends.
    await page.evaluate(() => chrome.runtime.sendMessage({ type: 'settings', settings: { hours: 2 / 3600 } }));
    await page.close();
    shop.delay.ms = 5_000; // the site's mail leaves after the entry's UNTIL (2 s, rounded up to the second)
    const card = await signUp(`https://late.test:${shop.port}/signup`, USER, 'late.test');
    const until2 = card.entries.find((e) => e.kind === 'expect')!.expect!.until;
    const sent = await until('the late confirmation', async () => shop.sent.find((s) => s.from === 'no-reply@late.test'));
    assert.ok(sent.at > Date.parse(until2), 'sent after the entry expired');
    assert.equal(sent.code, 550, sent.response);
    assert.equal((await inbox()).includes('Confirm your late.test account'), false);
  });
});
