/**
 * The CardDAV server with tsdav as the client, over real HTTPS: discovery,
 * cards with ETags and preconditions, the three REPORTs, address books,
 * vCard 3 and 4 served back byte for byte, authentication and per-user
 * isolation. Writes made outside CardDAV (the contacts service) change the
 * ctag and sync token too.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { DAVAddressBook } from 'tsdav';
import { startTestServer, type TestServer } from './helpers/server.ts';
import { basic, davFetch, rawRequest, tsdavClient } from './helpers/carddav.ts';

const ALICE = 'alice@example.test';
const BOB = 'bob@example.test';
const PASS = 'password-1';

const card4 = (uid: string, fn: string, email: string) =>
  `BEGIN:VCARD\r\nVERSION:4.0\r\nUID:${uid}\r\nFN:${fn}\r\nEMAIL:${email}\r\nEND:VCARD\r\n`;
// vCard 3.0 as Apple Contacts writes it: LF endings, groups, TYPE parameters, a folded line.
const CARD3 = [
  'BEGIN:VCARD',
  'VERSION:3.0',
  'PRODID:-//Apple Inc.//macOS 14.0//EN',
  'N:Appleseed;Jane;;;',
  'FN:Jane Appleseed',
  'item1.EMAIL;type=INTERNET;type=pref:jane@apple.test',
  'item1.X-ABLabel:_$!<Other>!$_',
  'TEL;type=CELL;type=VOICE:+1 555 0100',
  'NOTE:A note that is long enough to be folded by a careful client\\, so it is',
  '  folded here.',
  'UID:3A1F-JANE',
  'END:VCARD',
  '',
].join('\n');

describe('CardDAV with tsdav', () => {
  let t: TestServer;
  let f: typeof globalThis.fetch;
  let ca: string;
  let closeAgent: () => Promise<void>;
  let aliceId: number;
  let client: Awaited<ReturnType<typeof tsdavClient>>;
  let book: DAVAddressBook;
  const url = (path: string) => `${t.server.http.url}${path}`;
  const dav = (method: string, path: string, o: { user?: string; pass?: string; headers?: Record<string, string>; body?: string } = {}) =>
    f(url(path), {
      method,
      headers: { authorization: basic(o.user ?? ALICE, o.pass ?? PASS), ...o.headers },
      ...(o.body !== undefined ? { body: o.body } : {}),
    });

  before(async () => {
    t = await startTestServer();
    ({ fetch: f, ca, close: closeAgent } = davFetch(t));
    aliceId = (await t.server.services.accounts.add(ALICE, PASS, 'screen')).id;
    await t.server.services.accounts.add(BOB, PASS, 'open');
    client = await tsdavClient(t, f, ALICE, PASS);
    [book] = (await client.fetchAddressBooks()) as [DAVAddressBook];
  });
  after(async () => {
    await closeAgent();
    await t.close();
  });

  it('discovers the principal, the home and the default book (RFC 6764 well-known redirect)', async () => {
    const wk = await f(url('/.well-known/carddav'), { method: 'PROPFIND', redirect: 'manual' });
    assert.equal(wk.status, 301);
    assert.equal(wk.headers.get('location'), '/dav/');
    const [root] = await client.propfind({ url: url('/dav/'), props: { 'd:current-user-principal': {} }, depth: '0' });
    assert.equal(root?.props?.currentUserPrincipal?.href, '/dav/principals/alice@example.test/');
    const [principal] = await client.propfind({ url: url('/dav/principals/alice@example.test/'), props: { 'card:addressbook-home-set': {}, 'd:principal-URL': {} }, depth: '0' });
    assert.equal(principal?.props?.addressbookHomeSet?.href, '/dav/addressbooks/alice@example.test/');
    assert.match(JSON.stringify(principal?.props), /"principalU[Rr][Ll]":\{"href":"\/dav\/principals\/alice@example\.test\/"\}/);
    assert.equal(book.url, url('/dav/addressbooks/alice@example.test/default/'));
    assert.equal(book.displayName, 'Contacts');
    assert.match(String(book.ctag), /^urn:twoway:sync:\d+:\d+$/);
    assert.deepEqual(book.reports, ['addressbookMultiget', 'addressbookQuery', 'syncCollection']);
    const props = await client.propfind({
      url: book.url,
      props: { 'card:supported-address-data': {}, 'card:max-resource-size': {}, 'd:current-user-privilege-set': {}, 'd:owner': {} },
      depth: '0',
    });
    const p = props[0]!.props!;
    assert.equal(p.maxResourceSize, 1048576);
    assert.ok(JSON.stringify(p.supportedAddressData).includes('4.0'));
    const opts = await dav('OPTIONS', '/dav/');
    assert.match(opts.headers.get('dav') ?? '', /addressbook/);
    // OPTIONS needs no login: it reveals only what the server supports.
    const anon = await f(url('/dav/addressbooks/alice@example.test/default/'), { method: 'OPTIONS' });
    assert.equal(anon.status, 200);
    assert.equal(anon.headers.get('dav'), '1, 3, addressbook, extended-mkcol');
  });

  it('creates, reads, updates and deletes a card with strong ETags and preconditions', async () => {
    const text = card4('uid-carol', 'Carol', 'carol@friend.test');
    const created = await client.createVCard({ addressBook: book, vCardString: text, filename: 'Carol Card.vcf' });
    assert.equal(created.status, 201);
    const etag = created.headers.get('etag')!;
    assert.match(etag, /^"[0-9a-f]+"$/);
    // The client's name for the resource stays, whatever the UID.
    const get = await dav('GET', '/dav/addressbooks/alice@example.test/default/Carol%20Card.vcf');
    assert.equal(get.status, 200);
    assert.equal(get.headers.get('etag'), etag);
    assert.match(get.headers.get('content-type') ?? '', /^text\/vcard/);
    assert.equal(await get.text(), text);
    const head = await dav('HEAD', '/dav/addressbooks/alice@example.test/default/Carol%20Card.vcf');
    assert.equal(head.status, 200);
    assert.equal(head.headers.get('etag'), etag);
    assert.equal(head.headers.get('content-length'), String(Buffer.byteLength(text)));
    // Creating again with If-None-Match: * fails.
    assert.equal((await client.createVCard({ addressBook: book, vCardString: text, filename: 'Carol Card.vcf' })).status, 412);
    const cardUrl = `${book.url}Carol%20Card.vcf`;
    const stale = await client.updateVCard({ vCard: { url: cardUrl, etag: '"0000"', data: card4('uid-carol', 'Carol B', 'carol@friend.test') } });
    assert.equal(stale.status, 412);
    const updated = await client.updateVCard({ vCard: { url: cardUrl, etag, data: card4('uid-carol', 'Carol B', 'carol@friend.test') } });
    assert.equal(updated.status, 204);
    const etag2 = updated.headers.get('etag');
    assert.ok(etag2 && etag2 !== etag);
    assert.equal((await dav('GET', '/dav/addressbooks/alice@example.test/default/Carol%20Card.vcf', { headers: { 'if-none-match': etag2 } })).status, 304);
    assert.equal((await client.deleteVCard({ vCard: { url: cardUrl, etag } })).status, 412);
    assert.equal((await client.deleteVCard({ vCard: { url: cardUrl, etag: etag2 } })).status, 204);
    assert.equal((await dav('GET', '/dav/addressbooks/alice@example.test/default/Carol%20Card.vcf')).status, 404);
    assert.equal((await client.deleteVCard({ vCard: { url: cardUrl } })).status, 404);
  });

  it('refuses a second resource with the same UID (no-uid-conflict)', async () => {
    assert.equal((await client.createVCard({ addressBook: book, vCardString: card4('uid-dup', 'D', 'd@friend.test'), filename: 'one.vcf' })).status, 201);
    const r = await client.createVCard({ addressBook: book, vCardString: card4('uid-dup', 'D2', 'd2@friend.test'), filename: 'two.vcf' });
    assert.equal(r.status, 403);
    const body = await r.text();
    assert.match(body, /<card:no-uid-conflict><d:href>\/dav\/addressbooks\/alice@example\.test\/default\/one\.vcf<\/d:href><\/card:no-uid-conflict>/);
    assert.equal((await dav('GET', '/dav/addressbooks/alice@example.test/default/two.vcf')).status, 404);
  });

  it('stores vCard 3.0 (LF, groups, folding) and serves it back byte for byte, in GET and in REPORTs', async () => {
    const put = await dav('PUT', '/dav/addressbooks/alice@example.test/default/jane.vcf', { headers: { 'content-type': 'text/x-vcard; charset=utf-8' }, body: CARD3 });
    assert.equal(put.status, 201);
    assert.equal(await (await dav('GET', '/dav/addressbooks/alice@example.test/default/jane.vcf')).text(), CARD3);
    const [got] = await client.addressBookMultiGet({ url: book.url, props: { 'd:getetag': {}, 'card:address-data': {} }, objectUrls: [`${book.url}jane.vcf`], depth: '1' });
    assert.equal(got?.props?.getetag, put.headers.get('etag'));
    // The multistatus carries the text exactly (CRs escaped as &#13; so XML parsers keep them).
    const raw = await dav('REPORT', '/dav/addressbooks/alice@example.test/default/', {
      headers: { depth: '1', 'content-type': 'application/xml' },
      body: `<C:addressbook-multiget xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:carddav"><D:prop><C:address-data/></D:prop><D:href>/dav/addressbooks/alice@example.test/default/one.vcf</D:href></C:addressbook-multiget>`,
    });
    assert.match(await raw.text(), /BEGIN:VCARD&#13;\nVERSION:4\.0&#13;\nUID:uid-dup/);
    // The policy index sees the vCard 3 card's address.
    const hits = await t.server.store.contacts.match(aliceId, [{ kind: 'address', value: 'jane@apple.test' }]);
    assert.equal(hits.length, 1);
  });

  it('addressbook-query: text-match on EMAIL and FN with match types and negation', async () => {
    await client.createVCard({ addressBook: book, vCardString: card4('uid-q1', 'Quentin Query', 'quentin@query.test'), filename: 'q1.vcf' });
    await client.createVCard({ addressBook: book, vCardString: card4('uid-q2', 'Rita Query', 'rita@other.test'), filename: 'q2.vcf' });
    const query = async (name: string, text: string, matchType: string, negate = 'no') => {
      const res = await client.addressBookQuery({
        url: book.url,
        props: { 'd:getetag': {} },
        filters: {
          'card:prop-filter': {
            _attributes: { name },
            'card:text-match': { _attributes: { 'match-type': matchType, 'negate-condition': negate, collation: 'i;unicode-casemap' }, _text: text },
          },
        },
        depth: '1',
      });
      return res.map((r) => r.href?.replace(/^.*\//, '')).filter(Boolean).sort();
    };
    assert.deepEqual(await query('EMAIL', 'QUERY.TEST', 'ends-with'), ['q1.vcf']);
    assert.deepEqual(await query('FN', 'query', 'contains'), ['q1.vcf', 'q2.vcf']);
    assert.deepEqual(await query('FN', 'rita query', 'equals'), ['q2.vcf']);
    assert.deepEqual(await query('FN', 'Quentin', 'starts-with'), ['q1.vcf']);
    const notQuery = await query('FN', 'query', 'contains', 'yes');
    assert.ok(!notQuery.includes('q1.vcf') && !notQuery.includes('q2.vcf') && notQuery.includes('jane.vcf'));
  });

  it('sync-collection reports changes and deletions since a token; an invalid token is 403 valid-sync-token', async () => {
    const initial = await client.syncCollection({ url: book.url, props: { 'd:getetag': {} }, syncLevel: 1, syncToken: '' });
    const token1 = (initial as unknown as Array<{ raw?: { multistatus?: { syncToken?: string } } }>)[0]?.raw?.multistatus?.syncToken;
    assert.match(String(token1), /^urn:twoway:sync:/);
    assert.ok(initial.some((r) => r.href?.endsWith('/jane.vcf')));
    // Changes through CardDAV and through the contacts service (the CLI and API path).
    await client.deleteVCard({ vCard: { url: `${book.url}q2.vcf` } });
    await client.createVCard({ addressBook: book, vCardString: card4('uid-s1', 'Sync One', 's1@sync.test'), filename: 's1.vcf' });
    await t.server.services.contacts.allow(aliceId, 'cli-added@sync.test');
    const delta = await client.syncCollection({ url: book.url, props: { 'd:getetag': {} }, syncLevel: 1, syncToken: String(token1) });
    const byName = new Map(delta.filter((r) => r.href).map((r) => [r.href!.replace(/^.*\//, ''), r.status]));
    assert.equal(byName.get('q2.vcf'), 404);
    assert.equal(byName.get('s1.vcf'), 207);
    assert.equal(delta.filter((r) => r.href).length, 3, 'the CLI-added card too');
    const bad = await dav('REPORT', '/dav/addressbooks/alice@example.test/default/', {
      headers: { 'content-type': 'application/xml' },
      body: '<d:sync-collection xmlns:d="DAV:"><d:sync-token>urn:twoway:sync:999:1</d:sync-token><d:sync-level>1</d:sync-level><d:prop><d:getetag/></d:prop></d:sync-collection>',
    });
    assert.equal(bad.status, 403);
    assert.match(await bad.text(), /<d:valid-sync-token\/>/);
    // isCollectionDirty compares the ctag: a service write changes it.
    const [fresh] = await client.fetchAddressBooks();
    await t.server.services.contacts.block(aliceId, 'spam@sync.test');
    assert.equal((await client.isCollectionDirty({ collection: fresh! })).isDirty, true);
  });

  it('PROPFIND: depth 0 and 1, unknown properties 404, depth infinity 403 propfind-finite-depth', async () => {
    const r1 = await dav('PROPFIND', '/dav/addressbooks/alice@example.test/default/', {
      headers: { depth: '1', 'content-type': 'application/xml' },
      body: '<d:propfind xmlns:d="DAV:" xmlns:x="urn:unknown"><d:prop><d:getetag/><x:nope/></d:prop></d:propfind>',
    });
    assert.equal(r1.status, 207);
    const body = await r1.text();
    assert.match(body, /<x:nope xmlns:x="urn:unknown"\/><\/d:prop><d:status>HTTP\/1\.1 404 Not Found/);
    assert.ok((body.match(/<d:response>/g) ?? []).length > 3);
    const r0 = await dav('PROPFIND', '/dav/addressbooks/alice@example.test/', { headers: { depth: '0' } });
    assert.equal((await r0.text()).match(/<d:response>/g)?.length, 1);
    const inf = await dav('PROPFIND', '/dav/addressbooks/alice@example.test/', { headers: { depth: 'infinity' } });
    assert.equal(inf.status, 403);
    assert.match(inf.headers.get('content-type') ?? '', /^application\/xml/);
    assert.match(await inf.text(), /<d:propfind-finite-depth\/>/);
  });

  it('MKCOL (extended) creates an address book, PROPPATCH renames it, DELETE removes it and its cards; the default book stays', async () => {
    const mk = await client.makeCollection({
      url: url('/dav/addressbooks/alice@example.test/work/'),
      props: { 'd:resourcetype': { 'd:collection': {}, 'card:addressbook': {} }, 'd:displayname': 'Work' },
    });
    assert.equal(mk[0]?.status, 201);
    assert.equal((await dav('MKCOL', '/dav/addressbooks/alice@example.test/work/')).status, 405);
    const books = await client.fetchAddressBooks();
    assert.deepEqual(books.map((b) => b.displayName).sort(), ['Contacts', 'Work']);
    const work = books.find((b) => b.displayName === 'Work')!;
    await client.createVCard({ addressBook: work, vCardString: card4('uid-w', 'Worker', 'worker@work.test'), filename: 'w.vcf' });
    assert.equal((await t.server.store.contacts.match(aliceId, [{ kind: 'address', value: 'worker@work.test' }]))[0]?.book, 'work');
    const pp = await dav('PROPPATCH', '/dav/addressbooks/alice@example.test/work/', {
      headers: { 'content-type': 'application/xml' },
      body: '<d:propertyupdate xmlns:d="DAV:"><d:set><d:prop><d:displayname>Office</d:displayname></d:prop></d:set></d:propertyupdate>',
    });
    assert.equal(pp.status, 207);
    assert.match(await pp.text(), /200 OK/);
    assert.ok((await client.fetchAddressBooks()).some((b) => b.displayName === 'Office'));
    const wrongType = await dav('MKCOL', '/dav/addressbooks/alice@example.test/cal/', {
      headers: { 'content-type': 'application/xml' },
      body: '<d:mkcol xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav"><d:set><d:prop><d:resourcetype><d:collection/><c:calendar/></d:resourcetype></d:prop></d:set></d:mkcol>',
    });
    assert.equal(wrongType.status, 403);
    assert.match(await wrongType.text(), /valid-resourcetype/);
    assert.equal((await dav('DELETE', '/dav/addressbooks/alice@example.test/work/')).status, 204);
    assert.deepEqual(await t.server.store.contacts.match(aliceId, [{ kind: 'address', value: 'worker@work.test' }]), []);
    assert.equal((await dav('DELETE', '/dav/addressbooks/alice@example.test/default/')).status, 403);
    assert.equal((await client.fetchAddressBooks()).length, 1);
  });

  it('needs a login (password or app password) and keeps users apart', async () => {
    const anon = await f(url('/dav/addressbooks/alice@example.test/'), { method: 'PROPFIND', headers: { depth: '0' } });
    assert.equal(anon.status, 401);
    assert.match(anon.headers.get('www-authenticate') ?? '', /^Basic realm="twoway"/);
    assert.equal((await dav('PROPFIND', '/dav/', { pass: 'wrong', headers: { depth: '0' } })).status, 401);
    const alice = await t.server.services.accounts.get(ALICE);
    const app = await t.server.services.accounts.addAppPassword(alice, 'phone');
    assert.equal((await dav('PROPFIND', '/dav/', { pass: app.password, headers: { depth: '0' } })).status, 207);

    // Bob reaches none of Alice's resources, by any method, and a multiget href into her book returns no data.
    const paths = ['/dav/principals/alice@example.test/', '/dav/addressbooks/alice@example.test/', '/dav/addressbooks/alice@example.test/default/', '/dav/addressbooks/alice@example.test/default/jane.vcf'];
    for (const p of paths) {
      for (const method of ['PROPFIND', 'GET', 'DELETE', 'PUT', 'REPORT', 'MKCOL']) {
        const r = await dav(method, p, { user: BOB, headers: { depth: '0', 'content-type': 'text/vcard' }, ...(method === 'PUT' ? { body: card4('x', 'x', 'x@x.test') } : {}) });
        assert.equal(r.status, 403, `${method} ${p}`);
        assert.doesNotMatch(await r.text(), /Appleseed/);
      }
    }
    const bobClient = await tsdavClient(t, f, BOB, PASS);
    const [bobBook] = await bobClient.fetchAddressBooks();
    assert.equal(bobBook?.url, url('/dav/addressbooks/bob@example.test/default/'));
    const mg = await dav('REPORT', '/dav/addressbooks/bob@example.test/default/', {
      user: BOB,
      headers: { depth: '1', 'content-type': 'application/xml' },
      body: `<C:addressbook-multiget xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:carddav"><D:prop><C:address-data/></D:prop>
        <D:href>/dav/addressbooks/alice@example.test/default/jane.vcf</D:href>
        <D:href>${url('/dav/addressbooks/alice@example.test/default/jane.vcf')}</D:href>
        <D:href>/dav/addressbooks/bob@example.test/default/../../alice@example.test/default/jane.vcf</D:href>
        <D:href>/dav/addressbooks/bob@example.test/default/jane.vcf</D:href></C:addressbook-multiget>`,
    });
    const text = await mg.text();
    assert.equal(mg.status, 207);
    assert.doesNotMatch(text, /Appleseed|BEGIN:VCARD/);
    assert.equal(text.match(/403 Forbidden/g)?.length, 2);
    assert.equal(text.match(/400 Bad Request/g)?.length, 1);
    assert.equal(text.match(/404 Not Found/g)?.length, 1);
    // The principal collection lists only oneself.
    const principals = await (await dav('PROPFIND', '/dav/principals/', { user: BOB, headers: { depth: '1' } })).text();
    assert.doesNotMatch(principals, /alice/);
    // Raw paths with traversal never reach Alice's data either.
    const raw = await rawRequest(t, ca, { method: 'GET', path: '/dav/addressbooks/bob@example.test/../alice@example.test/default/jane.vcf', auth: basic(BOB, PASS) });
    assert.equal(raw.status, 400);
  });
});
