/**
 * Security battery, CardDAV (issue #6), counted: another user (bob) on
 * every path of alice's (principal, home, default and second book, card)
 * with every method (PROPFIND at depth 0 and 1, REPORT multiget, query and
 * sync, GET, HEAD, PUT, DELETE, MKCOL, PROPPATCH), multiget from his own
 * book with alice's hrefs, paths of users that do not exist and spellings of
 * alice's address; unauthenticated and wrongly authenticated access; path
 * traversal variants. Every case must be refused (401/403, or 400/404 for
 * paths that name nothing), never answer with alice's card, and leave
 * alice's address book unchanged. The last test prints
 * `security (carddav): N cases, N refused`.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { SecurityTally } from './helpers/security-tally.ts';
import { basic, davFetch, rawRequest, type RawResponse } from './helpers/carddav.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';

const ALICE = 'alice@example.test';
const BOB = 'bob@example.test';
const PASS = 'password-1';
const MARK = 'SECRET-MARK-7f3a';
const A_PRINCIPAL = `/dav/principals/${ALICE}/`;
const A_HOME = `/dav/addressbooks/${ALICE}/`;
const A_BOOK = `${A_HOME}default/`;
const A_WORK = `${A_HOME}work/`;
const A_CARD = `${A_BOOK}secret.vcf`;
const B_BOOK = `/dav/addressbooks/${BOB}/default/`;
const SECRET = `BEGIN:VCARD\r\nVERSION:4.0\r\nUID:secret\r\nFN:${MARK}\r\nEMAIL:friend@x.test\r\nEND:VCARD\r\n`;
const tally = new SecurityTally('carddav');

const D = 'xmlns:d="DAV:"';
const C = 'xmlns:c="urn:ietf:params:xml:ns:carddav"';
const PROPFIND = `<d:propfind ${D} ${C}><d:prop><d:displayname/><d:getetag/><c:address-data/><d:sync-token/></d:prop></d:propfind>`;
const MULTIGET = (hrefs: string[]) => `<c:addressbook-multiget ${D} ${C}><d:prop><d:getetag/><c:address-data/></d:prop>${hrefs.map((h) => `<d:href>${h}</d:href>`).join('')}</c:addressbook-multiget>`;
const QUERY = `<c:addressbook-query ${D} ${C}><d:prop><c:address-data/></d:prop><c:filter><c:prop-filter name="FN"><c:text-match match-type="contains">SECRET</c:text-match></c:prop-filter></c:filter></c:addressbook-query>`;
const SYNC = `<d:sync-collection ${D}><d:sync-token/><d:sync-level>1</d:sync-level><d:prop><d:getetag/></d:prop></d:sync-collection>`;
const PROPPATCH = `<d:propertyupdate ${D}><d:set><d:prop><d:displayname>owned</d:displayname></d:prop></d:set></d:propertyupdate>`;
const CARD = 'BEGIN:VCARD\r\nVERSION:4.0\r\nUID:intruder\r\nFN:Intruder\r\nEMAIL:evil@x.test\r\nEND:VCARD\r\n';

interface Attempt {
  method: string;
  path: string;
  headers?: Record<string, string>;
  body?: string;
}

/** Every method on every path of alice's, as some other user would try it. */
const CROSS_USER: Attempt[] = [
  ...[A_PRINCIPAL, A_HOME, A_BOOK, A_WORK, A_CARD].flatMap((path) =>
    ['0', '1'].map((depth): Attempt => ({ method: 'PROPFIND', path, headers: { depth, 'content-type': 'application/xml' }, body: PROPFIND })),
  ),
  ...[A_BOOK, A_WORK].flatMap((path): Attempt[] => [
    { method: 'REPORT', path, headers: { 'content-type': 'application/xml', depth: '1' }, body: MULTIGET([A_CARD]) },
    { method: 'REPORT', path, headers: { 'content-type': 'application/xml', depth: '1' }, body: QUERY },
    { method: 'REPORT', path, headers: { 'content-type': 'application/xml' }, body: SYNC },
  ]),
  { method: 'GET', path: A_CARD },
  { method: 'HEAD', path: A_CARD },
  { method: 'GET', path: A_BOOK },
  { method: 'GET', path: A_HOME },
  { method: 'PUT', path: `${A_BOOK}intruder.vcf`, headers: { 'content-type': 'text/vcard' }, body: CARD },
  { method: 'PUT', path: A_CARD, headers: { 'content-type': 'text/vcard' }, body: CARD.replace('intruder', 'secret') },
  { method: 'PUT', path: A_CARD, headers: { 'content-type': 'text/vcard', 'if-match': '*' }, body: CARD.replace('intruder', 'secret') },
  { method: 'DELETE', path: A_CARD },
  { method: 'DELETE', path: A_WORK },
  { method: 'DELETE', path: A_BOOK },
  { method: 'MKCOL', path: `${A_HOME}evil/` },
  { method: 'MKCOL', path: `${A_HOME}evil2/`, headers: { 'content-type': 'application/xml' }, body: `<d:mkcol ${D} ${C}><d:set><d:prop><d:resourcetype><d:collection/><c:addressbook/></d:resourcetype></d:prop></d:set></d:mkcol>` },
  { method: 'PROPPATCH', path: A_BOOK, headers: { 'content-type': 'application/xml' }, body: PROPPATCH },
  { method: 'PROPPATCH', path: A_PRINCIPAL, headers: { 'content-type': 'application/xml' }, body: PROPPATCH },
  // The same user spelled otherwise, and users that do not exist (403 as well: no user enumeration).
  { method: 'GET', path: `/dav/addressbooks/ALICE@EXAMPLE.TEST/default/secret.vcf` },
  { method: 'GET', path: `/dav/addressbooks/alice%40example.test/default/secret.vcf` },
  { method: 'PROPFIND', path: `/dav/addressbooks/Alice@example.test/`, headers: { depth: '1' } },
  { method: 'PROPFIND', path: '/dav/addressbooks/nobody@example.test/default/', headers: { depth: '1' } },
  { method: 'PUT', path: '/dav/addressbooks/nobody@example.test/default/x.vcf', headers: { 'content-type': 'text/vcard' }, body: CARD },
  { method: 'MKCOL', path: '/dav/addressbooks/nobody@example.test/book/' },
];

const TRAVERSAL = [
  `${B_BOOK}../../${ALICE}/default/secret.vcf`,
  `/dav/addressbooks/${BOB}/../${ALICE}/default/secret.vcf`,
  `${B_BOOK}%2e%2e/%2e%2e/${ALICE}/default/secret.vcf`,
  `${B_BOOK}%2E%2E%2F%2E%2E%2F${ALICE}%2Fdefault%2Fsecret.vcf`,
  `${B_BOOK}..%2f..%2f${ALICE}%2fdefault%2fsecret.vcf`,
  `${B_BOOK}..%5c..%5c${ALICE}%5cdefault%5csecret.vcf`,
  `${B_BOOK}%252e%252e/%252e%252e/${ALICE}/default/secret.vcf`,
  `/dav/addressbooks/${BOB}//${ALICE}/default/secret.vcf`,
  `/dav/addressbooks/${BOB}/default/./../../${ALICE}/default/secret.vcf`,
  `/dav/addressbooks/${ALICE}%00/default/secret.vcf`,
  `/dav/addressbooks/${BOB}%2f..%2f${ALICE}/default/secret.vcf`,
];

describe('security battery: CardDAV', () => {
  let t: TestServer;
  let ca: string;
  let closeAgent: () => Promise<void>;
  let aliceId: number;
  const as = (user: string | undefined, a: Attempt, pass = PASS): Promise<RawResponse> =>
    rawRequest(t, ca, { method: a.method, path: a.path, ...(user ? { auth: basic(user, pass) } : {}), headers: a.headers ?? {}, ...(a.body === undefined ? {} : { body: a.body }) });
  const snapshot = async () => JSON.stringify(await t.server.store.contacts.list(aliceId)) + JSON.stringify(await t.server.store.addressBooks.list(aliceId));
  const leaks = (r: RawResponse) => r.body.includes(MARK) || r.body.includes('secret.vcf') || r.body.includes('friend@x.test');

  before(async () => {
    t = await startTestServer();
    ({ ca, close: closeAgent } = davFetch(t));
    aliceId = (await t.server.services.accounts.add(ALICE, PASS)).id;
    await t.server.services.accounts.add(BOB, PASS);
    assert.equal((await as(ALICE, { method: 'PUT', path: A_CARD, headers: { 'content-type': 'text/vcard' }, body: SECRET })).status, 201);
    assert.equal((await as(ALICE, { method: 'MKCOL', path: A_WORK })).status, 201);
    assert.equal((await as(ALICE, { method: 'PUT', path: `${A_WORK}w.vcf`, headers: { 'content-type': 'text/vcard' }, body: SECRET.replace('UID:secret', 'UID:w') })).status, 201);
    assert.equal((await as(BOB, { method: 'PUT', path: `${B_BOOK}mine.vcf`, headers: { 'content-type': 'text/vcard' }, body: CARD })).status, 201);
  });
  after(async () => {
    await closeAgent();
    await t.close();
  });

  it('another user: every method on every path of alice is 403 and changes nothing', async () => {
    for (const a of CROSS_USER) {
      const before = await snapshot();
      const r = await as(BOB, a);
      const unchanged = (await snapshot()) === before;
      tally.expectRefused(`cross-user ${a.method} ${a.path} ${a.headers?.depth ?? ''}`, r.status === 403 && !leaks(r) && unchanged, `${r.status} ${r.body.slice(0, 300)}; unchanged ${unchanged}`);
    }
  });

  it("multiget from bob's own book with alice's hrefs: those hrefs are 403, no card data", async () => {
    const hrefs = [A_CARD, `${A_WORK}w.vcf`, `/dav/addressbooks/ALICE@example.test/default/secret.vcf`, `${B_BOOK}../../${ALICE}/default/secret.vcf`];
    for (const href of hrefs) {
      const r = await as(BOB, { method: 'REPORT', path: B_BOOK, headers: { 'content-type': 'application/xml', depth: '1' }, body: MULTIGET([`${B_BOOK}mine.vcf`, href]) });
      // The answer is a 207 for bob's own card; alice's href must come back refused (403, or 400/404 for a path naming nothing), without data.
      const own = r.body.includes('Intruder');
      const refusedHref = /<d:status>HTTP\/1\.1 40[034] [^<]*<\/d:status>/.test(r.body);
      tally.expectRefused(`multiget with ${href}`, r.status === 207 && own && refusedHref && !r.body.includes(MARK), `${r.status} ${r.body.slice(-500)}`);
    }
  });

  it('the principal collection lists only oneself', async () => {
    const r = await as(BOB, { method: 'PROPFIND', path: '/dav/principals/', headers: { depth: '1' } });
    tally.expectRefused('principal listing shows no other user', r.status === 207 && !r.body.includes(ALICE) && r.body.includes(BOB), r.body.slice(0, 400));
  });

  it('path traversal: never alice’s card, nothing changed', async () => {
    for (const path of TRAVERSAL) {
      for (const method of ['GET', 'PUT', 'DELETE', 'PROPFIND']) {
        const before = await snapshot();
        const r = await as(BOB, { method, path, headers: { depth: '0', 'content-type': 'text/vcard' }, ...(method === 'PUT' ? { body: CARD } : {}) });
        const unchanged = (await snapshot()) === before;
        tally.expectRefused(`traversal ${method} ${path}`, [400, 403, 404].includes(r.status) && !leaks(r) && unchanged, `${r.status} ${r.body.slice(0, 300)}`);
      }
    }
  });

  it('without credentials: 401 with a Basic challenge on every path and method', async () => {
    const extra: Attempt[] = [{ method: 'PROPFIND', path: '/dav/', headers: { depth: '0' } }, { method: 'PUT', path: `${B_BOOK}x.vcf`, headers: { 'content-type': 'text/vcard' }, body: CARD }];
    for (const a of [...CROSS_USER.filter((_, i) => i % 3 === 0), ...extra]) {
      const before = await snapshot();
      const r = await as(undefined, a);
      tally.expectRefused(`unauthenticated ${a.method} ${a.path}`, r.status === 401 && /^Basic realm=/.test(String(r.headers['www-authenticate'])) && !leaks(r) && (await snapshot()) === before, `${r.status} ${r.body.slice(0, 200)}`);
    }
  });

  it('wrong credentials: 401 (a few only, so the per-address lockout does not start)', async () => {
    const attempts: Array<[string, string, string]> = [
      [ALICE, 'wrong-password', 'alice with a wrong password'],
      [ALICE, `${PASS} `, "alice with bob's password plus a space"],
      ['nobody@example.test', PASS, 'a user that does not exist'],
    ];
    for (const [user, pass, name] of attempts) {
      const r = await as(user, { method: 'GET', path: A_CARD }, pass);
      tally.expectRefused(`bad credentials: ${name}`, r.status === 401 && !leaks(r), `${r.status}`);
    }
    const garbage = await rawRequest(t, ca, { method: 'GET', path: A_CARD, auth: 'Basic !!!notbase64', headers: {} });
    tally.expectRefused('bad credentials: a malformed Basic header', garbage.status === 401 && !leaks(garbage), `${garbage.status}`);
    const bearer = await rawRequest(t, ca, { method: 'GET', path: A_CARD, auth: 'Bearer abc', headers: {} });
    tally.expectRefused('bad credentials: a bearer token that is no session', bearer.status === 401 && !leaks(bearer), `${bearer.status}`);
  });

  it('alice still reads her card (the control case)', async () => {
    const r = await as(ALICE, { method: 'GET', path: A_CARD });
    assert.equal(r.status, 200);
    assert.equal(r.body, SECRET);
  });

  it('prints the tally', (tc) => tally.report((line) => tc.diagnostic(line)));
});
