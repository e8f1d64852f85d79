/**
 * The web app's Contacts pages in a real browser (chromium via
 * playwright-core) against a real server on loopback: add, search, block
 * and remove a contact (with htmx, and the same with JavaScript off);
 * hostile vCard fields run nothing; add an expected sender and see its uses
 * and time left; import a .vcf and read the summary; a file over the limit
 * gets the "File too large" page; axe-core finds no violation on any
 * contacts page at 390 and 1280 px.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Browser, Page } from 'playwright-core';
import { startTestServer, type TestServer } from './helpers/server.ts';
import { browserSkip, checkPage, launchBrowser, newContext, signIn } from './helpers/browser.ts';
import { IMPORT_LIMIT } from '../src/web/routes-contacts-import.ts';

const PASSWORD = 'correct horse battery staple';
const DORA = 'dora@example.test';

const HOSTILE_FN = `<script>alert('fn ran')</script><img src=x onerror="alert('img ran')">`;

describe('web app: contacts in chromium', { skip: browserSkip, timeout: 300_000 }, () => {
  let t: TestServer;
  let browser: Browser;
  let base: string;
  let doraId: number;

  const match = async (kind: 'address' | 'domain' | 'list', value: string) => (await t.server.store.contacts.match(doraId, [{ kind, value }])).map((h) => h.action);

  /** A page that fails the test if any script of a hostile field runs (an alert, a confirm) or the page errors. */
  function watch(page: Page): string[] {
    const ran: string[] = [];
    page.on('dialog', (d) => {
      ran.push(d.message());
      void d.dismiss();
    });
    page.on('pageerror', (err) => ran.push(`pageerror: ${err.message}`));
    return ran;
  }

  before(async () => {
    t = await startTestServer();
    base = t.server.http.url;
    doraId = (await t.server.services.accounts.add(DORA, PASSWORD, 'screen')).id;
    await t.server.services.contacts.put(
      doraId,
      'default',
      `BEGIN:VCARD\r\nVERSION:4.0\r\nUID:hostile\r\nFN:${HOSTILE_FN}\r\nEMAIL:mallory@evil.test\r\nNOTE:"><svg onload=alert('note ran')>\r\nEND:VCARD\r\n`,
    );
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
    await t?.close();
  });

  test('add, search, block and remove a contact (htmx swaps the list); hostile vCard fields run nothing', async () => {
    const ctx = await newContext(browser);
    const page = await ctx.newPage();
    const ran = watch(page);
    try {
      await signIn(page, base, DORA, PASSWORD);
      await page.getByRole('link', { name: 'Contacts', exact: true }).click();
      await page.waitForURL(`${base}/contacts`);
      await page.getByRole('link', { name: HOSTILE_FN }).waitFor();

      await page.getByLabel('Address, @domain or mailing list id').fill('fred@friends.test');
      await page.getByLabel('Name (optional)').fill('Fred Friend');
      await page.getByRole('button', { name: 'Add', exact: true }).click();
      await page.getByText('Added Fred Friend.').waitFor();
      assert.deepEqual(await match('address', 'fred@friends.test'), ['allow']);

      await page.getByLabel('Address, @domain or mailing list id').fill('@spammy.test');
      await page.getByRole('button', { name: 'Block', exact: true }).first().click();
      await page.getByText('Blocked @spammy.test.').waitFor();
      assert.deepEqual(await match('domain', 'spammy.test'), ['block']);

      await page.getByLabel('Search contacts').fill('FRIENDS.TEST');
      await page.getByRole('button', { name: 'Search' }).click();
      await page.waitForURL(`${base}/contacts?q=FRIENDS.TEST`);
      assert.equal(await page.locator('table.contacts tbody tr').count(), 1);

      // Block from the list: the button names its card (aria-describedby), htmx swaps only the list.
      const fred = page.locator('table.contacts tbody tr').filter({ hasText: 'Fred Friend' });
      await fred.getByRole('button', { name: 'Block' }).click();
      await page.getByText('Blocked Fred Friend.').waitFor();
      await fred.getByRole('button', { name: 'Unblock' }).waitFor();
      assert.equal(page.url(), `${base}/contacts?q=FRIENDS.TEST`, 'htmx swapped the list in place');
      assert.deepEqual(await match('address', 'fred@friends.test'), ['block']);

      // The card's page shows its vCard.
      await page.getByRole('link', { name: 'Fred Friend' }).click();
      assert.match(await page.getByLabel('vCard').inputValue(), /FN:Fred Friend\r?\nEMAIL:fred@friends\.test\r?\nX-TWOWAY-BLOCKED:TRUE/);
      await page.goto(`${base}/contacts?q=friends.test`);
      await page.locator('table.contacts tbody tr').filter({ hasText: 'Fred Friend' }).getByRole('button', { name: 'Remove' }).click();
      await page.getByText('Removed Fred Friend.').waitFor();
      assert.deepEqual(await match('address', 'fred@friends.test'), []);

      // The hostile card: its page and the vCard editor show the text; nothing ran.
      await page.goto(`${base}/contacts?q=mallory`);
      await page.getByRole('link', { name: HOSTILE_FN }).click();
      await page.getByRole('heading', { name: HOSTILE_FN }).waitFor();
      assert.match(await page.getByLabel('vCard').inputValue(), /NOTE:"><svg onload=alert\('note ran'\)>/);
      await page.waitForTimeout(300);
      assert.deepEqual(ran, [], 'no script of a vCard field ran');
    } finally {
      await ctx.close();
    }
  });

  test('without JavaScript: add, block, edit the vCard and remove work as form posts with redirects', async () => {
    const ctx = await browser.newContext({ ignoreHTTPSErrors: true, javaScriptEnabled: false });
    const page = await ctx.newPage();
    try {
      await signIn(page, base, DORA, PASSWORD);
      await page.goto(`${base}/contacts`);
      await page.getByLabel('Address, @domain or mailing list id').fill('<dev.lists.example.org>');
      await page.getByLabel('Kind').selectOption('list');
      await page.getByRole('button', { name: 'Add', exact: true }).click();
      await page.getByText('Added dev.lists.example.org.').waitFor();
      assert.deepEqual(await match('list', 'dev.lists.example.org'), ['allow']);
      const row = page.locator('table.contacts tbody tr').filter({ hasText: 'list dev.lists.example.org' });
      await row.getByRole('button', { name: 'Block' }).click();
      await page.getByText('Blocked dev.lists.example.org.').waitFor();
      assert.deepEqual(await match('list', 'dev.lists.example.org'), ['block']);
      await page.getByRole('link', { name: 'dev.lists.example.org' }).click();
      const text = await page.getByLabel('vCard').inputValue();
      await page.getByLabel('vCard').fill(text.replace(/^FN:.*$/m, 'FN:Dev list'));
      await page.getByRole('button', { name: 'Save vCard' }).click();
      await page.getByText('Saved Dev list.').waitFor();
      await page.getByRole('button', { name: 'Remove' }).click();
      await page.getByText('Removed Dev list.').waitFor();
      assert.deepEqual(await match('list', 'dev.lists.example.org'), []);
    } finally {
      await ctx.close();
    }
  });

  test('expected senders: add one and see its uses and time left; remove it', async () => {
    const ctx = await newContext(browser);
    const page = await ctx.newPage();
    try {
      await signIn(page, base, DORA, PASSWORD);
      await page.goto(`${base}/contacts`);
      await page.getByRole('link', { name: 'Expected senders' }).click();
      await page.getByLabel('Domain').fill('shop.example');
      await page.getByLabel('For how long').fill('3d');
      await page.getByLabel('Uses').fill('2');
      await page.getByRole('button', { name: 'Expect' }).click();
      await page.getByText('Now expecting shop.example.').waitFor();
      const row = page.locator('table.expected tbody tr').filter({ hasText: 'shop.example' });
      await row.getByText('2 uses left').waitFor();
      await row.getByText(/^(3 d|2 d 23 h) left$/).waitFor();
      const [entry] = await t.server.services.contacts.cards.expected(doraId);
      assert.equal(entry?.domain, 'shop.example');
      assert.equal(entry?.uses, 2);
      await page.getByLabel('For how long').fill('forever');
      await page.getByLabel('Domain').fill('other.example');
      await page.getByRole('button', { name: 'Expect' }).click();
      await page.getByText(/"forever" is not a duration/).waitFor();
      await page.goto(`${base}/contacts/expected`);
      await row.getByRole('button', { name: 'Remove' }).click();
      await page.getByText('No longer expecting shop.example.').waitFor();
      assert.deepEqual(await t.server.services.contacts.cards.expected(doraId), []);
    } finally {
      await ctx.close();
    }
  });

  test('import a .vcf: the summary on the page; a file over the limit gets a clear page', async () => {
    const ctx = await newContext(browser);
    const page = await ctx.newPage();
    const ran = watch(page);
    try {
      await signIn(page, base, DORA, PASSWORD);
      await page.goto(`${base}/contacts/import`);
      const vcf = [
        'BEGIN:VCARD\r\nVERSION:3.0\r\nUID:imp-a\r\nFN:Imported A\r\nEMAIL:a@import.test\r\nEND:VCARD',
        'BEGIN:VCARD\r\nVERSION:4.0\r\nUID:imp-b\r\nFN:Imported B\r\nX-TWOWAY-DOMAIN:bad domain\r\nEND:VCARD',
        'BEGIN:VCARD\r\nVERSION:4.0\r\nUID:imp-c\r\nFN:Imported C\r\nX-TWOWAY-DOMAIN:c-import.test\r\nEND:VCARD',
        '',
      ].join('\r\n');
      await page.getByLabel('vCard file (.vcf)').setInputFiles({ name: '<img src=x onerror=alert(1)>.vcf', mimeType: 'text/vcard', buffer: Buffer.from(vcf) });
      await page.getByRole('button', { name: 'Import' }).click();
      await page.getByText('<img src=x onerror=alert(1)>.vcf: imported 2, merged 0, rejected 1.').waitFor();
      await page.getByText(/^Line 11: X-TWOWAY-DOMAIN/).waitFor();
      assert.deepEqual(await match('address', 'a@import.test'), ['allow']);
      assert.deepEqual(await match('domain', 'c-import.test'), ['allow']);

      await page.getByLabel('vCard file (.vcf)').setInputFiles({ name: 'huge.vcf', mimeType: 'text/vcard', buffer: Buffer.alloc(IMPORT_LIMIT + 1024, 'a') });
      await page.getByRole('button', { name: 'Import' }).click();
      await page.getByRole('heading', { name: 'File too large' }).waitFor();
      await page.getByText(/larger than 2 MiB/).waitFor();
      assert.deepEqual(ran, []);
    } finally {
      await ctx.close();
    }
  });

  test('axe-core finds no violations on the contacts pages (390 and 1280 px)', async () => {
    const ann = await t.server.services.contacts.add(doraId, { sender: 'ann@example.org', name: 'Ann Example', blocked: false });
    const [card] = (await t.server.services.contacts.cards.page(doraId, { limit: 1, text: ann.uid })).cards;
    await t.server.services.contacts.add(doraId, { sender: '@partner.example', blocked: false });
    await t.server.services.contacts.add(doraId, { sender: 'offers@spammy.example', blocked: true });
    await t.server.services.contacts.expect(doraId, 'signup.example', { forMs: 86_400_000, uses: 1 });
    const summary = `/contacts/import?file=friends.vcf&imported=2&merged=1&rejected=1&r=${encodeURIComponent('11:X-TWOWAY-DOMAIN: Bad domain syntax')}`;
    for (const width of [390, 1280]) {
      // The CSP bypass only here: axe is injected as a script the page's own policy would refuse.
      const ctx = await newContext(browser, { width, bypassCSP: true });
      const page = await ctx.newPage();
      try {
        await signIn(page, base, DORA, PASSWORD);
        for (const [name, path] of [
          ['contacts', '/contacts'],
          ['contacts-card', `/contacts/${card!.id}`],
          ['contacts-expected', '/contacts/expected'],
          ['contacts-import', summary],
        ] as const) {
          await page.goto(`${base}${path}`);
          await checkPage(page, name, width);
        }
      } finally {
        await ctx.close();
      }
    }
  });
});
