/**
 * Fuzzing the CardDAV server (docs/carddav.md) over real HTTPS: mutated
 * PROPFIND, REPORT (multiget, query, sync-collection), PROPPATCH and MKCOL
 * XML bodies with odd Depth headers and paths, and mutated vCard PUTs with
 * odd content types and preconditions, as an authenticated user.
 *
 * Asserted for every request: an answer within 15 s, never a 5xx status
 * (but the 507 of RFC 6578 3.6 for a sync limit);
 * every 4xx is a DAV answer (an XML `DAV:error`, or no body at all), never a
 * JSON problem or a stack trace; a refused PUT left nothing at its href and
 * a refused overwrite left the old card as it was. Afterwards the server
 * still serves: a valid card is stored and served back byte for byte.
 *
 * Seeded: repeat with FUZZ_SEED; FUZZ_ITERATIONS makes it longer.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { forEachCase, fuzzIterations, fuzzSeed, mutateText, type Rng } from './helpers/fuzz.ts';
import { basic, davFetch, rawRequest, type RawResponse } from './helpers/carddav.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';

const ALICE = 'alice@example.test';
const PASS = 'password-1';
const HOME = `/dav/addressbooks/${ALICE}/`;
const BOOK = `${HOME}default/`;
const KEEP = 'BEGIN:VCARD\r\nVERSION:4.0\r\nUID:keep\r\nFN:Keep Me\r\nEMAIL:keep@x.test\r\nEND:VCARD\r\n';
const CONCURRENCY = 4;

const D = 'xmlns:d="DAV:"';
const C = 'xmlns:c="urn:ietf:params:xml:ns:carddav"';
const XML = {
  propfind: [
    `<?xml version="1.0" encoding="utf-8"?><d:propfind ${D} xmlns:cs="http://calendarserver.org/ns/" ${C}><d:prop><d:resourcetype/><d:displayname/><cs:getctag/><d:sync-token/><d:getetag/><c:address-data/><d:current-user-principal/><c:addressbook-home-set/><d:supported-report-set/><d:current-user-privilege-set/></d:prop></d:propfind>`,
    `<d:propfind ${D}><d:allprop/><d:include><d:supported-report-set/></d:include></d:propfind>`,
    `<d:propfind ${D}><d:propname/></d:propfind>`,
  ],
  report: [
    `<c:addressbook-multiget ${D} ${C}><d:prop><d:getetag/><c:address-data/></d:prop><d:href>${BOOK}keep.vcf</d:href><d:href>${BOOK}missing.vcf</d:href><d:href>/dav/addressbooks/bob@example.test/default/x.vcf</d:href></c:addressbook-multiget>`,
    `<c:addressbook-query ${D} ${C}><d:prop><d:getetag/><c:address-data><c:prop name="EMAIL"/></c:address-data></d:prop><c:filter test="anyof"><c:prop-filter name="EMAIL"><c:text-match collation="i;unicode-casemap" match-type="contains" negate-condition="no">keep</c:text-match><c:param-filter name="TYPE"><c:is-not-defined/></c:param-filter></c:prop-filter><c:prop-filter name="FN"><c:is-not-defined/></c:prop-filter></c:filter><c:limit><c:nresults>5</c:nresults></c:limit></c:addressbook-query>`,
    `<d:sync-collection ${D}><d:sync-token/><d:sync-level>1</d:sync-level><d:prop><d:getetag/></d:prop></d:sync-collection>`,
    `<d:sync-collection ${D}><d:sync-token>urn:twoway:sync:1:0</d:sync-token><d:sync-level>1</d:sync-level><d:limit><d:nresults>1</d:nresults></d:limit><d:prop><d:getetag/></d:prop></d:sync-collection>`,
  ],
  proppatch: [
    `<d:propertyupdate ${D} ${C}><d:set><d:prop><d:displayname>Renamed</d:displayname><c:addressbook-description>desc</c:addressbook-description></d:prop></d:set><d:remove><d:prop><d:displayname/></d:prop></d:remove></d:propertyupdate>`,
  ],
  mkcol: [
    `<d:mkcol ${D} ${C}><d:set><d:prop><d:resourcetype><d:collection/><c:addressbook/></d:resourcetype><d:displayname>Fuzz</d:displayname></d:prop></d:set></d:mkcol>`,
  ],
};
const CARD = [
  'BEGIN:VCARD',
  'VERSION:4.0',
  'UID:fuzz-UIDX',
  'FN:Fuzz Person',
  'N:Person;Fuzz;;;',
  'EMAIL;TYPE=work:fuzz@x.test',
  'X-TWOWAY-BLOCKED:false',
  'X-TWOWAY-EXPECT;PURPOSE=ownership-confirmation;UNTIL=20991231T000000Z;USES=3:shop.test',
  'X-TWOWAY-LIST:list.x.test',
  'NOTE:folded line that goes on and on and on and on and on and on and on and on and',
  '  continues here',
  'END:VCARD',
  '',
].join('\r\n');

/** XML-specific damage on top of the generic text mutations. */
function mutateXml(rng: Rng, xml: string): string {
  switch (rng.int(10)) {
    case 0: // deep nesting
      return xml.replace('<d:prop>', `<d:prop>${'<d:x>'.repeat(rng.range(100, 5_000))}${'</d:x>'.repeat(rng.range(0, 5_000))}`);
    case 1: // entities, DOCTYPE, processing instructions
      return `${rng.pick(['<!DOCTYPE d [<!ENTITY e "x">]>', '<!DOCTYPE d SYSTEM "file:///etc/passwd">', '<?xml-stylesheet href="x"?>', '<?xml version="1.1" encoding="utf-16"?>'])}${xml.replace('<d:getetag/>', rng.pick(['&e;', '&lt;', '&#0;', '&#x110000;', '<![CDATA[x]]>', '<!-- c -->']))}`;
    case 2: // namespaces removed, renamed or redeclared
      return xml.replace(rng.pick([/xmlns:d="DAV:"/, /xmlns:c="[^"]*"/, /d:/g, /c:/g]), rng.pick(['', 'xmlns:d="urn:other"', 'e:', 'd:', 'xmlns:d="DAV:" xmlns:d="DAV:"']));
    case 3: // hrefs with odd targets
      return xml.replace(/<d:href>[^<]*<\/d:href>/, `<d:href>${rng.pick(['../../bob@example.test/default/x.vcf', `${BOOK}%2e%2e/%2e%2e/`, 'https://evil.test/x', '', `${BOOK}${'a'.repeat(3000)}`, `${BOOK}keep.vcf`.repeat(50), 'mailto:x', `${BOOK}%00`, `${BOOK}%ZZ`])}</d:href>`.repeat(rng.range(1, 50)));
    case 4: // a huge text node
      return xml.replace('keep', 'k'.repeat(rng.range(1000, 100_000)));
    case 5: // many elements
      return xml.replace('<d:getetag/>', '<d:getetag/>'.repeat(rng.range(100, 5000)));
    default:
      return mutateText(rng, xml, 4);
  }
}

function mutateCard(rng: Rng, uid: string): string {
  let card = CARD.replace('UIDX', uid);
  if (rng.bool(0.15)) return rng.bytes(rng.range(0, 300)).toString('latin1');
  switch (rng.int(6)) {
    case 0:
      card = card.replace('VERSION:4.0', rng.pick(['VERSION:3.0', 'VERSION:2.1', 'VERSION:', 'VERSION:4.0\r\nVERSION:3.0']));
      break;
    case 1: // parameters and values that parsers trip on
      card = card.replace('EMAIL;TYPE=work:', rng.pick(['EMAIL;TYPE="unterminated:', 'EMAIL;=x:', 'EMAIL;TYPE=a,b,,c;PREF=0:', 'EMAIL;VALUE=uri:mailto:', 'item1.EMAIL;X=^n^^:', 'EMAIL;;;:', 'EMAIL:']));
      break;
    case 2: // nested vCards and unbalanced BEGIN/END
      card = card.replace('END:VCARD', rng.pick(['BEGIN:VCARD\r\nEND:VCARD\r\nEND:VCARD', 'END:VCARD\r\nBEGIN:VCARD\r\nVERSION:4.0\r\nUID:second\r\nEND:VCARD', '', `${'BEGIN:VCARD\r\n'.repeat(rng.range(2, 500))}END:VCARD`]));
      break;
    case 3: // long lines and many lines
      card = card.replace('FN:Fuzz Person', `FN:${'x'.repeat(rng.range(1000, 100_000))}${'\r\nNOTE:n'.repeat(rng.range(0, 3000))}`);
      break;
    case 4:
      card = card.replace('X-TWOWAY-EXPECT;PURPOSE=ownership-confirmation;UNTIL=20991231T000000Z;USES=3:shop.test', rng.pick(['X-TWOWAY-EXPECT;UNTIL=garbage:shop.test', 'X-TWOWAY-EXPECT;USES=-1;UNTIL=20991231T000000Z:', 'X-TWOWAY-EXPECT;USES=99999999999999999999;UNTIL=20991231T000000Z:*', 'X-TWOWAY-BLOCKED:maybe', 'X-TWOWAY-LIST:']));
      break;
    default:
      break;
  }
  return mutateText(rng, card, rng.range(1, 4));
}

interface Request {
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: string | Buffer;
  /** For PUT: the href that must hold nothing (new) or the old card (overwrite) if the PUT is refused. */
  put?: { href: string; overwrite: boolean };
}

function buildRequest(rng: Rng, i: number): Request {
  const kind = rng.pick(['propfind', 'report', 'put', 'put', 'proppatch', 'mkcol']);
  const paths = ['/dav/', `/dav/principals/${ALICE}/`, HOME, BOOK, `${BOOK}keep.vcf`, '/dav/principals/', `${BOOK}missing.vcf`];
  const xmlType = rng.pick(['application/xml', 'text/xml; charset=utf-8', '', 'application/json', 'text/vcard', mutateText(rng, 'application/xml', 2).replace(/[^\x20-\x7e]/g, '').slice(0, 300)]);
  if (kind === 'put') {
    const overwrite = rng.bool(0.2);
    const href = overwrite ? `${BOOK}keep.vcf` : `${BOOK}fz-${i}${rng.pick(['.vcf', '', '.VCF', '%20x.vcf', '~.vcf'])}`;
    const raw = mutateCard(rng, `fz-${i}`);
    const headers: Record<string, string> = {};
    const type = rng.pick(['text/vcard', 'text/vcard; charset=utf-8', 'text/x-vcard', 'text/directory', 'application/octet-stream', '', 'text/vcard; version=4.0']);
    if (type) headers['content-type'] = type;
    if (rng.bool(0.2)) headers[rng.pick(['if-match', 'if-none-match'])] = rng.pick(['*', '"x"', 'W/"x"', '"a", "b"', '', mutateText(rng, '"etag"', 2).replace(/[^\x20-\x7e]/g, '')]);
    return { method: 'PUT', path: href, headers, body: Buffer.from(raw, rng.bool(0.85) ? 'utf8' : 'latin1'), put: { href, overwrite } };
  }
  const base = rng.pick(XML[kind as keyof typeof XML]);
  const body = rng.bool(0.9) ? mutateXml(rng, base) : rng.bytes(rng.range(0, 200)).toString('latin1');
  const headers: Record<string, string> = {};
  if (xmlType) headers['content-type'] = xmlType;
  if (kind === 'propfind' || kind === 'report') headers.depth = rng.pick(['0', '1', 'infinity', '2', '-1', '', '1, 1', 'one']);
  const method = { propfind: 'PROPFIND', report: 'REPORT', proppatch: 'PROPPATCH', mkcol: 'MKCOL' }[kind]!;
  const path = kind === 'mkcol' ? `${HOME}${rng.pick([`fz${i}`, 'default', '', `fz${i}/x`, `${'n'.repeat(70)}`, `fz%20${i}`])}/` : kind === 'report' ? rng.pick([BOOK, BOOK, HOME, `${BOOK}keep.vcf`]) : rng.pick(paths);
  return { method, path, headers, body: Buffer.from(body, rng.bool(0.9) ? 'utf8' : 'latin1') };
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<T>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms)))]).finally(() => clearTimeout(timer));
}

describe('fuzz: CardDAV', () => {
  let t: TestServer;
  let ca: string;
  let closeAgent: () => Promise<void>;
  const req = (r: Request) => withTimeout(rawRequest(t, ca, { method: r.method, path: r.path, auth: basic(ALICE, PASS), headers: r.headers, ...(r.body === undefined ? {} : { body: r.body }) }), 15_000, `${r.method} ${r.path.slice(0, 80)}`);

  before(async () => {
    t = await startTestServer();
    ({ ca, close: closeAgent } = davFetch(t));
    await t.server.services.accounts.add(ALICE, PASS);
    await t.server.services.accounts.add('bob@example.test', PASS);
    const ok = await req({ method: 'PUT', path: `${BOOK}keep.vcf`, headers: { 'content-type': 'text/vcard' }, body: KEEP });
    assert.equal(ok.status, 201);
  });
  after(async () => {
    await closeAgent();
    await t.close();
  });

  it('answers every mutated XML and vCard request with a clean DAV answer, stores nothing refused, keeps serving', async (tc) => {
    const seed = fuzzSeed();
    const count = fuzzIterations(150); // each request pays a Basic-auth scrypt, which dominates the time
    tc.diagnostic(`seed ${seed} (FUZZ_SEED=${seed}), ${count} requests, ${CONCURRENCY} at a time`);
    const statuses = new Map<string, number>();
    const batch: Array<Promise<void>> = [];
    let keep = KEEP;
    await forEachCase(seed, count, async (rng, i) => {
      const r = buildRequest(rng, i);
      // Overwrites of keep.vcf run alone, so that "the old card is still there" is about this request only.
      if (r.put?.overwrite && batch.length > 0) {
        const failed = (await Promise.allSettled(batch.splice(0))).find((s) => s.status === 'rejected');
        if (failed) throw failed.reason;
      }
      const run = async () => {
        const a: RawResponse = await req(r);
        const what = `case ${i}: ${r.method} ${r.path.slice(0, 100)} ${JSON.stringify(r.headers).slice(0, 300)}`;
        statuses.set(`${r.method} ${a.status}`, (statuses.get(`${r.method} ${a.status}`) ?? 0) + 1);
        // 507 is a documented DAV answer (RFC 6578 3.6: a sync-collection limit the server cannot honour), nothing else 5xx is.
        const limit507 = a.status === 507 && /<d:number-of-matches-within-limits\/>/.test(a.body);
        assert.ok(a.status >= 200 && (a.status < 500 || limit507), `${what}: status ${a.status}: ${a.body.slice(0, 400)}`);
        // A header block over node's 16 KiB is refused by the HTTP parser before any route (fastify's JSON 431): not a DAV answer, but not ours to shape.
        if (a.status === 431) return;
        assert.doesNotMatch(a.body, /\bat .*\.[tj]s:\d+|problem\+json|"statusCode"|Internal Server Error/, `${what}: leaks internals: ${a.body.slice(0, 400)}`);
        if (a.status >= 400 && a.body !== '') {
          assert.match(String(a.headers['content-type']), /^application\/xml/, `${what}: ${a.status} ${a.headers['content-type']}`);
          assert.match(a.body, /<d:error xmlns:d="DAV:"/, `${what}: ${a.status} without DAV:error: ${a.body.slice(0, 300)}`);
        }
        if (r.put) {
          const now = await req({ method: 'GET', path: r.put.href, headers: {} });
          if (a.status >= 300) {
            if (r.put.overwrite) assert.equal(now.body, keep, `${what}: a refused overwrite changed the card`);
            else assert.ok(now.status === 404 || now.status === 400, `${what}: a refused PUT left ${now.status} ${now.body.slice(0, 100)}`);
          } else if (r.put.overwrite) keep = now.body;
        }
      };
      batch.push(run());
      if (batch.length >= CONCURRENCY || r.put?.overwrite || i === count - 1) {
        const failed = (await Promise.allSettled(batch.splice(0))).find((s) => s.status === 'rejected');
        if (failed) throw failed.reason;
      }
    });
    tc.diagnostic(`statuses ${JSON.stringify(Object.fromEntries([...statuses].sort()))}`);

    const card = 'BEGIN:VCARD\r\nVERSION:4.0\r\nUID:after-fuzz\r\nFN:After\r\nEMAIL:after@x.test\r\nEND:VCARD\r\n';
    const put = await req({ method: 'PUT', path: `${BOOK}after-fuzz-${seed}.vcf`, headers: { 'content-type': 'text/vcard' }, body: card });
    assert.ok(put.status === 201 || put.status === 204, `${put.status} ${put.body}`);
    const got = await req({ method: 'GET', path: `${BOOK}after-fuzz-${seed}.vcf`, headers: {} });
    assert.equal(got.body, card);
    const listing = await req({ method: 'PROPFIND', path: BOOK, headers: { depth: '1', 'content-type': 'application/xml' }, body: XML.propfind[0]! });
    assert.equal(listing.status, 207);
  });
});
