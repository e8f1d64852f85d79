/**
 * Bad input to the CardDAV server, each refused cleanly with nothing stored:
 * malformed XML (400, DAV:error, application/xml), XXE attempts, malformed
 * vCards (400 naming the line) and wrong content types (415), oversized
 * bodies (413), path traversal in raw requests (400), hrefs into another
 * user's collection (403) and a wrong ETag (412). No answer carries a stack
 * trace or a JSON problem document.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startTestServer, type TestServer } from './helpers/server.ts';
import { basic, davFetch, rawRequest, type RawResponse } from './helpers/carddav.ts';

const ALICE = 'alice@example.test';
const BOB = 'bob@example.test';
const PASS = 'password-1';
const BOOK = '/dav/addressbooks/alice@example.test/default/';

describe('CardDAV bad input', () => {
  let t: TestServer;
  let ca: string;
  let closeAgent: () => Promise<void>;
  let aliceId: number;
  const req = (o: { method: string; path: string; user?: string; headers?: Record<string, string>; body?: string | Buffer }) =>
    rawRequest(t, ca, { ...o, auth: basic(o.user ?? ALICE, PASS) });
  const snapshot = async () => JSON.stringify(await t.server.store.contacts.list(aliceId)) + JSON.stringify(await t.server.store.addressBooks.list(aliceId));
  const assertDavError = (r: RawResponse, status: number, pattern?: RegExp) => {
    assert.equal(r.status, status, r.body);
    assert.match(String(r.headers['content-type']), /^application\/xml/);
    assert.match(r.body, /<d:error xmlns:d="DAV:"/);
    assert.doesNotMatch(r.body, /\bat .*\.ts:\d+|problem\+json|"detail"/);
    if (pattern) assert.match(r.body, pattern);
  };

  before(async () => {
    t = await startTestServer();
    ({ ca, close: closeAgent } = davFetch(t));
    aliceId = (await t.server.services.accounts.add(ALICE, PASS)).id;
    await t.server.services.accounts.add(BOB, PASS);
    const ok = await req({ method: 'PUT', path: `${BOOK}keep.vcf`, headers: { 'content-type': 'text/vcard' }, body: 'BEGIN:VCARD\r\nVERSION:4.0\r\nUID:keep\r\nFN:Keep\r\nEMAIL:keep@x.test\r\nEND:VCARD\r\n' });
    assert.equal(ok.status, 201);
  });
  after(async () => {
    await closeAgent();
    await t.close();
  });

  it('malformed XML and XXE: 400 with a DAV:error element', async () => {
    const before = await snapshot();
    const bodies = [
      '<d:propfind xmlns:d="DAV:"><d:prop><d:getetag></d:prop></d:propfind>',
      '<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]><d:propfind xmlns:d="DAV:"><d:prop>&x;</d:prop></d:propfind>',
      '<!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><d:propfind xmlns:d="DAV:">&b;</d:propfind>',
      'this is not xml',
    ];
    for (const body of bodies) {
      for (const method of ['PROPFIND', 'REPORT', 'PROPPATCH']) {
        const r = await req({ method, path: BOOK, headers: { 'content-type': 'application/xml', depth: '0' }, body });
        assertDavError(r, 400, /Malformed XML/);
        assert.doesNotMatch(r.body, /root:/);
      }
    }
    const mk = await req({ method: 'MKCOL', path: '/dav/addressbooks/alice@example.test/newbook/', headers: { 'content-type': 'application/xml' }, body: bodies[0]! });
    assertDavError(mk, 400);
    assert.equal(await snapshot(), before);
  });

  it('malformed vCards: 400 naming the line; a non-vCard content type: 415; bad UTF-8: 400', async () => {
    const before = await snapshot();
    const cases: Array<[string, RegExp]> = [
      ['BEGIN:VCARD\r\nVERSION:4.0\r\nUID:b1\r\nFN:x\r\nthis line has no colon\r\nEND:VCARD\r\n', /line 5/],
      ['BEGIN:VCARD\r\nVERSION:2.1\r\nFN:x\r\nEND:VCARD\r\n', /line 2.*VERSION/],
      ['BEGIN:VCARD\r\nVERSION:4.0\r\nUID:b2\r\nFN:x\r\n', /missing END:VCARD/],
      ['BEGIN:VCARD\r\nVERSION:4.0\r\nUID:b3\r\nX-TWOWAY-BLOCKED:maybe\r\nEND:VCARD\r\n', /line 4.*X-TWOWAY-BLOCKED/],
      ['BEGIN:VCARD\r\nVERSION:4.0\r\nUID:b4\r\nX-TWOWAY-EXPECT;PURPOSE=ownership-confirmation:shop.test\r\nEND:VCARD\r\n', /line 4.*UNTIL/],
      ['', /empty input/],
    ];
    for (const [body, why] of cases) {
      const r = await req({ method: 'PUT', path: `${BOOK}bad.vcf`, headers: { 'content-type': 'text/vcard' }, body });
      assertDavError(r, 400, /<card:valid-address-data\/>/);
      assert.match(r.body, why);
    }
    const json = await req({ method: 'PUT', path: `${BOOK}bad.vcf`, headers: { 'content-type': 'application/json' }, body: '{"a":1}' });
    assertDavError(json, 415, /<card:supported-address-data\/>/);
    const latin1 = await req({ method: 'PUT', path: `${BOOK}bad.vcf`, headers: { 'content-type': 'text/vcard' }, body: Buffer.from('BEGIN:VCARD\r\nVERSION:4.0\r\nFN:J\xfcrgen\r\nEND:VCARD\r\n', 'latin1') });
    assertDavError(latin1, 400, /UTF-8/);
    assert.equal(await snapshot(), before);
  });

  it('oversized bodies: 413', async () => {
    const before = await snapshot();
    const big = `BEGIN:VCARD\r\nVERSION:4.0\r\nUID:big\r\nFN:Big\r\nNOTE:${'x'.repeat(1024 * 1024)}\r\nEND:VCARD\r\n`;
    const r = await req({ method: 'PUT', path: `${BOOK}big.vcf`, headers: { 'content-type': 'text/vcard' }, body: big });
    assertDavError(r, 413, /max-resource-size/);
    const r2 = await req({ method: 'REPORT', path: BOOK, headers: { 'content-type': 'application/xml' }, body: `<a>${'x'.repeat(1024 * 1024)}</a>` });
    assertDavError(r2, 413);
    assert.equal(await snapshot(), before);
  });

  it('path traversal (.., %2e%2e, //, encoded slashes) is 400 and touches nothing', async () => {
    const before = await snapshot();
    const paths = [
      '/dav/addressbooks/bob@example.test/../alice@example.test/default/keep.vcf',
      '/dav/addressbooks/alice@example.test/default/../../bob@example.test/default/x.vcf',
      '/dav/addressbooks/alice@example.test/%2e%2e/bob@example.test/default/x.vcf',
      '/dav/addressbooks/alice@example.test/default/%2E%2E',
      '/dav/addressbooks/alice@example.test//default/x.vcf',
      '/dav//addressbooks/alice@example.test/default/x.vcf',
      '/dav/addressbooks/alice@example.test/default/x%2F..%2F..%2Fy.vcf',
      '/dav/addressbooks/alice@example.test/default/.',
    ];
    for (const path of paths) {
      for (const method of ['GET', 'PUT', 'DELETE', 'PROPFIND', 'MKCOL']) {
        const r = await req({ method, path, headers: { 'content-type': 'text/vcard', depth: '0' }, body: method === 'PUT' ? 'BEGIN:VCARD\r\nVERSION:4.0\r\nUID:t\r\nFN:t\r\nEND:VCARD\r\n' : undefined });
        assert.ok(r.status === 400 || r.status === 404, `${method} ${path}: ${r.status}`);
        assert.doesNotMatch(r.body, /BEGIN:VCARD/);
      }
    }
    assert.equal(await snapshot(), before);
  });

  it('writes into another user\'s collection are 403; a wrong ETag is 412', async () => {
    const before = await snapshot();
    const bob = (o: { method: string; path: string; headers?: Record<string, string>; body?: string }) => req({ ...o, user: BOB });
    assertDavError(await bob({ method: 'PUT', path: `${BOOK}intruder.vcf`, headers: { 'content-type': 'text/vcard' }, body: 'BEGIN:VCARD\r\nVERSION:4.0\r\nUID:i\r\nFN:i\r\nEND:VCARD\r\n' }), 403);
    assertDavError(await bob({ method: 'DELETE', path: `${BOOK}keep.vcf` }), 403);
    assertDavError(await bob({ method: 'MKCOL', path: '/dav/addressbooks/alice@example.test/evil/' }), 403);
    assertDavError(await bob({ method: 'PROPPATCH', path: BOOK, headers: { 'content-type': 'application/xml' }, body: '<d:propertyupdate xmlns:d="DAV:"><d:set><d:prop><d:displayname>x</d:displayname></d:prop></d:set></d:propertyupdate>' }), 403);
    const wrong = await req({ method: 'PUT', path: `${BOOK}keep.vcf`, headers: { 'content-type': 'text/vcard', 'if-match': '"not-the-etag"' }, body: 'BEGIN:VCARD\r\nVERSION:4.0\r\nUID:keep\r\nFN:Changed\r\nEND:VCARD\r\n' });
    assertDavError(wrong, 412);
    assertDavError(await req({ method: 'DELETE', path: `${BOOK}keep.vcf`, headers: { 'if-match': '"not-the-etag"' } }), 412);
    assert.equal(await snapshot(), before);
  });

  it('unsupported methods and reports get DAV errors too', async () => {
    assertDavError(await req({ method: 'LOCK', path: `${BOOK}keep.vcf` }), 405);
    assertDavError(await req({ method: 'COPY', path: `${BOOK}keep.vcf`, headers: { destination: `${BOOK}copy.vcf` } }), 405);
    assertDavError(await req({ method: 'REPORT', path: BOOK, headers: { 'content-type': 'application/xml' }, body: '<d:expand-property xmlns:d="DAV:"/>' }), 403, /supported-report/);
    const collation = await req({
      method: 'REPORT',
      path: BOOK,
      headers: { 'content-type': 'application/xml' },
      body: '<C:addressbook-query xmlns:C="urn:ietf:params:xml:ns:carddav"><C:filter><C:prop-filter name="FN"><C:text-match collation="i;klingon">x</C:text-match></C:prop-filter></C:filter></C:addressbook-query>',
    });
    assertDavError(collation, 403, /supported-collation/);
  });
});
