/**
 * The web app's Contacts pages over real HTTPS without a browser (the
 * flows in chromium are in web-contacts-browser.test.ts): a web edit is
 * seen at once by a CardDAV client (tsdav sync-collection and a raw
 * REPORT); an edit from a stale page is refused; key paging and search;
 * expected senders; the .vcf import with its summary and its size limit;
 * hostile vCard text escaped; and the security battery: another user's
 * contact id in any URL is a 404 and changes nothing, and every form
 * without the CSRF token is a 403.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startTestServer, type TestServer } from './helpers/server.ts';
import { basic, davFetch, rawRequest, tsdavClient } from './helpers/carddav.ts';
import { SecurityTally } from './helpers/security-tally.ts';
import { IMPORT_LIMIT } from '../src/web/routes-contacts-import.ts';

const PASSWORD = 'correct horse battery staple';
const ALICE = 'alice@example.test';
const BOB = 'bob@example.test';

interface WebResponse {
  status: number;
  location: string | null;
  text: string;
}

/** A browser without a browser: a cookie jar, the CSRF token of the last page, redirects not followed. */
function webClient(t: TestServer) {
  const { fetch: f, close } = davFetch(t);
  const base = t.server.http.url;
  const jar = new Map<string, string>();
  let csrf = '';
  async function request(method: string, path: string, body?: { form?: Record<string, string | string[]>; multipart?: FormData; raw?: Buffer; type?: string }): Promise<WebResponse> {
    const headers: Record<string, string> = { cookie: [...jar].map(([k, v]) => `${k}=${v}`).join('; ') };
    let payload: BodyInit | undefined;
    if (body?.form) {
      const p = new URLSearchParams();
      for (const [k, v] of Object.entries(body.form)) for (const x of Array.isArray(v) ? v : [v]) p.append(k, x);
      payload = p.toString();
      headers['content-type'] = 'application/x-www-form-urlencoded';
    } else if (body?.multipart) payload = body.multipart;
    else if (body?.raw) {
      payload = new Uint8Array(body.raw);
      headers['content-type'] = body.type ?? 'application/octet-stream';
    }
    const res = await f(`${base}${path}`, { method, headers, body: payload, redirect: 'manual' });
    for (const c of res.headers.getSetCookie()) {
      const [pair] = c.split(';');
      const eq = pair!.indexOf('=');
      jar.set(pair!.slice(0, eq), pair!.slice(eq + 1));
    }
    const text = await res.text();
    const token = /name="_csrf" value="([^"]+)"/.exec(text);
    if (token) csrf = token[1]!;
    return { status: res.status, location: res.headers.get('location'), text };
  }
  return {
    get: (path: string) => request('GET', path),
    /** A form post with this session's CSRF token (unless the fields set `_csrf` themselves). */
    post: (path: string, fields: Record<string, string | string[]> = {}) => request('POST', path, { form: { _csrf: csrf, ...fields } }),
    postRaw: (path: string, body: { form?: Record<string, string>; multipart?: FormData; raw?: Buffer; type?: string }) => request('POST', path, body),
    get csrf() {
      return csrf;
    },
    get cookie() {
      return [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
    },
    async signIn(address: string) {
      await request('GET', '/sign-in');
      const r = await request('POST', '/sign-in', { form: { _csrf: csrf, address, password: PASSWORD } });
      assert.equal(r.status, 303, r.text);
      await request('GET', '/contacts');
    },
    close,
  };
}

const cardIds = (html: string) => [...html.matchAll(/<a id="c-(\d+)" href="\/contacts\/\d+">/g)].map((m) => Number(m[1]));

describe('web app: contacts', () => {
  let t: TestServer;
  let aliceId: number;
  let bobId: number;
  let alice: ReturnType<typeof webClient>;
  const dav = () => davFetch(t);

  before(async () => {
    t = await startTestServer();
    aliceId = (await t.server.services.accounts.add(ALICE, PASSWORD, 'screen')).id;
    bobId = (await t.server.services.accounts.add(BOB, PASSWORD, 'screen')).id;
    alice = webClient(t);
    await alice.signIn(ALICE);
  });
  after(async () => {
    alice?.close();
    await t?.close();
  });

  test('add, edit and block on the web: a CardDAV client sees each write at once (sync-collection and a raw REPORT)', async () => {
    const d = dav();
    try {
      const client = await tsdavClient(t, d.fetch, ALICE, PASSWORD);
      const [book] = await client.fetchAddressBooks();
      const sync0 = await client.syncCollection({ url: book!.url, props: { 'd:getetag': {} }, syncLevel: 1, syncToken: '' });
      const token0 = String((sync0 as unknown as Array<{ raw?: { multistatus?: { syncToken?: string } } }>)[0]?.raw?.multistatus?.syncToken);

      const add = await alice.post('/contacts/add', { sender: 'Ann@Friends.test', name: 'Ann Friend', kind: 'sender', action: 'allow' });
      assert.equal(add.status, 303);
      assert.equal(add.location, '/contacts?done=added&who=Ann%20Friend');
      const list = await alice.get(add.location!);
      assert.match(list.text, /Added Ann Friend\./);
      const [id] = cardIds(list.text);
      const card = (await t.server.store.contacts.byId(aliceId, id!))!;
      assert.match(card.vcard, /^FN:Ann Friend\r$/m);
      assert.deepEqual((await t.server.store.contacts.match(aliceId, [{ kind: 'address', value: 'ann@friends.test' }])).map((h) => h.action), ['allow']);

      // The card's page shows its vCard; the edit goes back with the card's ETag.
      const pageOf = await alice.get(`/contacts/${id}`);
      assert.ok(pageOf.text.includes('<textarea id="vcard" name="vcard"'));
      assert.ok(pageOf.text.includes('FN:Ann Friend'));
      const etag = /name="etag" value="([^"]+)"/.exec(pageOf.text)![1]!.replaceAll('&quot;', '"');
      const edited = card.vcard.replace('FN:Ann Friend', 'FN:Ann Edited').replace('END:VCARD', 'X-TWOWAY-DOMAIN:friends-corp.test\r\nEND:VCARD');
      const save = await alice.post(`/contacts/${id}/edit`, { vcard: edited, etag });
      assert.equal(save.status, 303, save.text);

      // tsdav: the sync since token0 reports the card; its text is the web edit.
      const delta = await client.syncCollection({ url: book!.url, props: { 'd:getetag': {} }, syncLevel: 1, syncToken: token0 });
      const hrefs = delta.filter((r) => r.href).map((r) => r.href!);
      assert.deepEqual(hrefs, [`/dav/addressbooks/${ALICE}/default/${card.href}`]);
      const [got] = await client.addressBookMultiGet({ url: book!.url, props: { 'd:getetag': {}, 'card:address-data': {} }, objectUrls: hrefs, depth: '1' });
      const text = String((got?.props?.addressData as { _cdata?: string } | string | undefined) && typeof got?.props?.addressData === 'object' ? (got.props.addressData as { _cdata?: string })._cdata : got?.props?.addressData);
      assert.match(text, /FN:Ann Edited/);
      assert.match(text, /X-TWOWAY-DOMAIN:friends-corp\.test/);

      // Block on the web, then a raw REPORT (addressbook-query on FN) carries X-TWOWAY-BLOCKED.
      assert.equal((await alice.post(`/contacts/${id}/block`, { back: '/contacts' })).status, 303);
      const report = await d.fetch(`${t.server.http.url}/dav/addressbooks/${ALICE}/default/`, {
        method: 'REPORT',
        headers: { authorization: basic(ALICE, PASSWORD), depth: '1', 'content-type': 'application/xml' },
        body: `<C:addressbook-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:carddav"><D:prop><D:getetag/><C:address-data/></D:prop><C:filter><C:prop-filter name="FN"><C:text-match collation="i;unicode-casemap" match-type="equals">Ann Edited</C:text-match></C:prop-filter></C:filter></C:addressbook-query>`,
      });
      assert.equal(report.status, 207);
      const xml = await report.text();
      assert.match(xml, /X-TWOWAY-BLOCKED:TRUE/);
      assert.match(xml, /FN:Ann Edited/);
      const hits = await t.server.store.contacts.match(aliceId, [{ kind: 'domain', value: 'friends-corp.test' }]);
      assert.deepEqual(hits.map((h) => h.action), ['block'], 'the policy index sees the block');

      // A stale page (the ETag before the block) cannot overwrite the newer card.
      const stale = await alice.post(`/contacts/${id}/edit`, { vcard: edited, etag });
      assert.equal(stale.status, 409);
      assert.match(stale.text, /changed elsewhere/);
      assert.match((await t.server.store.contacts.byId(aliceId, id!))!.vcard, /X-TWOWAY-BLOCKED:TRUE/);
      // The UID cannot be changed by an edit (that would be another card).
      const cur = (await t.server.store.contacts.byId(aliceId, id!))!;
      const uidChange = await alice.post(`/contacts/${id}/edit`, { vcard: cur.vcard.replace(/^UID:.*$/m, 'UID:other\r'), etag: cur.etag });
      assert.equal(uidChange.status, 400);

      assert.equal((await alice.post(`/contacts/${id}/unblock`, { back: `/contacts/${id}` })).location, `/contacts/${id}?done=unblocked&who=Ann%20Edited`);
      assert.doesNotMatch((await t.server.store.contacts.byId(aliceId, id!))!.vcard, /BLOCKED/);
      assert.equal((await alice.post(`/contacts/${id}/remove`, { back: '/contacts' })).status, 303);
      assert.equal(await t.server.store.contacts.byId(aliceId, id!), undefined);
      const gone = await d.fetch(`${t.server.http.url}/dav/addressbooks/${ALICE}/default/${card.href}`, { headers: { authorization: basic(ALICE, PASSWORD) } });
      assert.equal(gone.status, 404);
    } finally {
      d.close();
    }
  });

  test('a whole domain and a mailing list, allowed or blocked; a bad list id is a 400 page', async () => {
    assert.equal((await alice.post('/contacts/add', { sender: '@Corp.test', kind: 'sender', action: 'allow' })).status, 303);
    assert.equal((await alice.post('/contacts/add', { sender: 'Dev list <dev.lists.example.org>', name: 'Dev list', kind: 'list', action: 'block' })).status, 303);
    const probe = (kind: 'domain' | 'list', value: string) => t.server.store.contacts.match(aliceId, [{ kind, value }]);
    assert.deepEqual((await probe('domain', 'corp.test')).map((h) => h.action), ['allow']);
    assert.deepEqual((await probe('list', 'dev.lists.example.org')).map((h) => h.action), ['block']);
    const list = await alice.get('/contacts');
    assert.match(list.text, /@corp\.test/);
    assert.match(list.text, /<span class="status status-failed">blocked<\/span> list dev\.lists\.example\.org/);
    const bad = await alice.post('/contacts/add', { sender: 'not a list id', kind: 'list', action: 'allow' });
    assert.equal(bad.status, 400);
    assert.match(bad.text, /List-Id/);
    // Allowing a sender lifts the block `block` wrote for it, as `twoway contacts allow` does.
    await t.server.services.contacts.block(aliceId, 'eve@corp.test');
    await alice.post('/contacts/add', { sender: 'eve@corp.test', kind: 'sender', action: 'allow' });
    assert.deepEqual((await t.server.store.contacts.match(aliceId, [{ kind: 'address', value: 'eve@corp.test' }])).map((h) => h.action), ['allow']);
  });

  test('key paging (newest first, 50 a page) and search over the cards', async () => {
    for (let i = 0; i < 120; i++) await t.server.services.contacts.add(aliceId, { sender: `bulk${i}@paging.test`, name: `Bulk ${i}`, blocked: false });
    const first = await alice.get('/contacts');
    assert.equal(cardIds(first.text).length, 50);
    assert.ok(first.text.includes('>Bulk 119<'));
    const older = /href="\/contacts\?before=(\d+)" rel="next">Older/.exec(first.text);
    assert.ok(older);
    const second = await alice.get(`/contacts?before=${older[1]}`);
    assert.equal(cardIds(second.text).length, 50);
    assert.ok(second.text.includes('>Bulk 69<') && !second.text.includes('>Bulk 70<'));
    assert.ok(Math.max(...cardIds(second.text)) < Number(older[1]), 'strictly older than the last card shown');
    const search = await alice.get('/contacts?q=BULK1');
    // bulk1, bulk10-19, bulk100-119: 31 cards, one page.
    assert.equal(cardIds(search.text).length, 31);
    assert.doesNotMatch(search.text, /rel="next"/);
    const none = await alice.get(`/contacts?q=${encodeURIComponent('100%_')}`);
    assert.equal(cardIds(none.text).length, 0, '% and _ are literal');
    assert.match(none.text, /No contact matches/);
  });

  test('expected senders: add one (domain, duration, uses), see its uses and time left, remove it', async () => {
    const r = await alice.post('/contacts/expected', { domain: 'Shop.example', for: '2h', uses: '3' });
    assert.equal(r.status, 303, r.text);
    assert.equal(r.location, '/contacts/expected?done=added&who=shop.example');
    const pageText = (await alice.get(r.location!)).text;
    assert.match(pageText, /Now expecting shop\.example\./);
    assert.match(pageText, /<td id="exp-0">shop\.example/);
    assert.match(pageText, /3 uses left/);
    assert.match(pageText, /(2 h|1 h 5\d min) left/);
    const entries = await t.server.services.contacts.cards.expected(aliceId);
    assert.equal(entries.length, 1);
    assert.equal(entries[0]!.uses, 3);
    for (const [fields, why] of [
      [{ domain: 'shop.example', for: 'soon', uses: '1' }, /not a duration/],
      [{ domain: 'shop.example', for: '1h', uses: '0' }, /Uses must be/],
      [{ domain: 'not a domain!', for: '1h', uses: '1' }, /domain/i],
    ] as const) {
      const bad = await alice.post('/contacts/expected', fields);
      assert.equal(bad.status, 400);
      assert.match(bad.text, why);
    }
    // This page removes only expected-sender cards: a person's card id here is a 404.
    const person = (await t.server.services.contacts.cards.page(aliceId, { limit: 1, text: 'bulk' })).cards[0]!;
    assert.equal((await alice.post(`/contacts/expected/${person.id}/remove`)).status, 404);
    assert.equal((await alice.post(`/contacts/expected/${entries[0]!.id}/remove`)).status, 303);
    assert.equal((await t.server.services.contacts.cards.expected(aliceId)).length, 0);
  });

  test('import a .vcf: the summary of the CLI import (imported, merged, rejected with line); over the limit a clear 413 page', async () => {
    const vcf = [
      'BEGIN:VCARD\r\nVERSION:4.0\r\nUID:imp-1\r\nFN:Imported One\r\nEMAIL:one@import.test\r\nEND:VCARD',
      'BEGIN:VCARD\r\nVERSION:4.0\r\nUID:imp-2\r\nFN:Imported Two\r\nX-TWOWAY-DOMAIN:not a domain!\r\nEND:VCARD',
      'BEGIN:VCARD\r\nVERSION:4.0\r\nUID:imp-1\r\nFN:Imported One Again\r\nEMAIL:one@import.test\r\nEND:VCARD',
      '',
    ].join('\r\n');
    const fd = new FormData();
    fd.append('_csrf', alice.csrf);
    fd.append('file', new Blob([vcf], { type: 'text/vcard' }), 'friends.vcf');
    const r = await alice.postRaw('/contacts/import', { multipart: fd });
    assert.equal(r.status, 303, r.text);
    const summary = await alice.get(r.location!);
    assert.match(summary.text, /friends\.vcf: imported 1, merged 1, rejected 1\./);
    assert.match(summary.text, /<li>Line 11: X-TWOWAY-DOMAIN: Bad domain syntax/);
    assert.equal((await t.server.store.contacts.get(aliceId, 'default', 'imp-1'))?.vcard.includes('Imported One Again'), true);

    const big = new FormData();
    big.append('_csrf', alice.csrf);
    big.append('file', new Blob([Buffer.alloc(IMPORT_LIMIT + 1, 'a')]), 'huge.vcf');
    const tooBig = await alice.postRaw('/contacts/import', { multipart: big });
    assert.equal(tooBig.status, 413);
    assert.match(tooBig.text, /File too large/);
    assert.match(tooBig.text, /larger than 2 MiB/);
    assert.match(tooBig.text, /Content-Security-Policy|<main id="main">/);

    // Declared far over the limit: refused at once, before any of the body is read.
    const d = dav();
    const declared = await rawRequest(t, d.ca, {
      method: 'POST',
      path: '/contacts/import',
      headers: { cookie: alice.cookie, 'content-type': 'multipart/form-data; boundary=x', 'content-length': String(64 * 1024 * 1024) },
      body: '--x\r\n',
    });
    assert.equal(declared.status, 413);
    assert.match(declared.body, /File too large/);
    await d.close();

    const empty = new FormData();
    empty.append('_csrf', alice.csrf);
    assert.equal((await alice.postRaw('/contacts/import', { multipart: empty })).status, 400);
    const junk = await alice.postRaw('/contacts/import', { raw: Buffer.from('--x\r\nno headers end'), type: 'multipart/form-data; boundary=x' });
    assert.equal(junk.status, 400);
  });

  test('hostile vCard fields are escaped on the list, the card page and the import summary', async () => {
    const uid = 'hostile-1';
    const vcard = `BEGIN:VCARD\r\nVERSION:4.0\r\nUID:${uid}\r\nFN:<script>alert(1)</script><img src=x onerror=alert(2)>\r\nEMAIL:mallory@evil.test\r\nNOTE:"><svg onload=alert(3)>\r\nEND:VCARD\r\n`;
    await t.server.services.contacts.put(aliceId, 'default', vcard);
    const list = await alice.get('/contacts?q=mallory');
    assert.ok(list.text.includes('&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;'));
    const id = cardIds(list.text)[0]!;
    const one = await alice.get(`/contacts/${id}`);
    for (const text of [list.text, one.text]) {
      assert.doesNotMatch(text, /<script>alert|<img src=x|<svg onload/);
    }
    assert.ok(one.text.includes('NOTE:&quot;&gt;&lt;svg onload=alert(3)&gt;'));
    const summary = await alice.get(`/contacts/import?imported=0&merged=0&rejected=1&file=${encodeURIComponent('<img src=x onerror=alert(1)>.vcf')}&r=${encodeURIComponent('3:<script>alert(4)</script>')}`);
    assert.doesNotMatch(summary.text, /<img src=x|<script>alert/);
    assert.ok(summary.text.includes('&lt;script&gt;alert(4)&lt;/script&gt;'));
  });

  test("security: another user's contact id is a 404 in every URL and changes nothing; forms without the CSRF token are 403", async (ctx) => {
    const tally = new SecurityTally('web contacts');
    const bobCard = await t.server.services.contacts.add(bobId, { sender: 'secret@bob-friends.test', name: 'Bob secret friend', blocked: false });
    const bobExpect = await t.server.services.contacts.expect(bobId, 'bob-shop.test', { forMs: 3_600_000 });
    const bobIds = (await t.server.services.contacts.cards.page(bobId, { limit: 10 })).cards.map((c) => c.id);
    assert.equal(bobIds.length, 2);
    const before = await t.server.store.contacts.list(bobId);
    for (const id of bobIds) {
      for (const [method, path, fields] of [
        ['GET', `/contacts/${id}`, {}],
        ['POST', `/contacts/${id}/edit`, { vcard: bobCard.vcard.replace('Bob secret friend', 'pwned'), etag: bobCard.etag }],
        ['POST', `/contacts/${id}/block`, {}],
        ['POST', `/contacts/${id}/unblock`, {}],
        ['POST', `/contacts/${id}/remove`, {}],
        ['POST', `/contacts/expected/${id}/remove`, {}],
      ] as const) {
        const r = method === 'GET' ? await alice.get(path) : await alice.post(path, fields);
        tally.expectRefused(`${method} ${path} (bob's card as alice)`, r.status === 404 && !r.text.includes('secret') && !r.text.includes('bob-shop'), `${r.status}`);
      }
    }
    for (const path of ['/contacts/0', '/contacts/abc', '/contacts/99999999999', '/contacts/1e3', '/contacts/-1']) {
      const r = await alice.get(path);
      tally.expectRefused(`GET ${path}`, r.status === 404, `${r.status}`);
    }
    assert.deepEqual(await t.server.store.contacts.list(bobId), before, "bob's cards are untouched");
    assert.ok(bobExpect.uid);

    const mine = (await t.server.services.contacts.cards.page(aliceId, { limit: 1 })).cards[0]!;
    for (const [path, fields] of [
      ['/contacts/add', { sender: 'csrf@evil.test', action: 'allow' }],
      [`/contacts/${mine.id}/edit`, { vcard: mine.vcard, etag: mine.etag }],
      [`/contacts/${mine.id}/block`, {}],
      [`/contacts/${mine.id}/remove`, {}],
      ['/contacts/expected', { domain: 'csrf.test', for: '1h', uses: '1' }],
    ] as const) {
      for (const token of [undefined, 'wrong']) {
        const r = await alice.postRaw(path, { form: { ...fields, ...(token ? { _csrf: token } : {}) } });
        tally.expectRefused(`POST ${path} with ${token ? 'a wrong' : 'no'} CSRF token`, r.status === 403, `${r.status}`);
      }
    }
    const fd = new FormData();
    fd.append('file', new Blob(['BEGIN:VCARD\r\nVERSION:4.0\r\nUID:csrf\r\nFN:x\r\nEMAIL:csrf@evil.test\r\nEND:VCARD\r\n']), 'x.vcf');
    const upload = await alice.postRaw('/contacts/import', { multipart: fd });
    tally.expectRefused('POST /contacts/import without a CSRF token', upload.status === 403, `${upload.status}`);
    assert.equal(await t.server.store.contacts.get(aliceId, 'default', 'csrf'), undefined);
    assert.deepEqual(await t.server.store.contacts.match(aliceId, [{ kind: 'address', value: 'csrf@evil.test' }]), []);
    assert.ok((await t.server.store.contacts.byId(aliceId, mine.id))!, 'my card is still there');
    tally.report((line) => ctx.diagnostic(line));
  });
});
