import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ReplyError } from './errors.ts';
import {
  buildContactCard,
  buildExpectCard,
  escapeText,
  expectLive,
  rewriteExpectCard,
  foldLine,
  newUid,
  parseContactCard,
  unescapeText,
  VCardError,
} from './vcard-index.ts';

const crlf = (...lines: string[]): string => lines.join('\r\n') + '\r\n';

function assertVCardError(text: string, line: number | null, problem: RegExp): void {
  assert.throws(
    () => parseContactCard(text),
    (err: unknown) => {
      assert.ok(err instanceof VCardError, `expected VCardError, got ${String(err)}`);
      assert.equal(err.line, line, `line number in: ${err.message}`);
      assert.match(err.problem, problem);
      if (line !== null) assert.match(err.message, new RegExp(`line ${line}\\b`));
      return true;
    },
  );
}

test('vCard 4.0 with every profile property', () => {
  const card = parseContactCard(
    crlf(
      'BEGIN:VCARD',
      'VERSION:4.0',
      'UID:urn:uuid:4fbe8971-0bc3-424c-9c26-36c3e1eff6b1',
      'FN:Alice Example',
      'EMAIL;TYPE=work;PREF=1:Alice@Example.ORG',
      'EMAIL:mailto:Bob@Example.net',
      'item1.EMAIL:grouped@example.com',
      'X-TWOWAY-DOMAIN:Partner.Example',
      'X-TWOWAY-DOMAIN:@bücher.de',
      'X-TWOWAY-LIST:Developers <Dev.Lists.Example.org>',
      'x-twoway-list:<announce.example.org>',
      'NOTE:ignored\\, but parsed',
      'END:VCARD',
    ),
  );
  assert.equal(card.version, '4.0');
  assert.equal(card.uid, 'urn:uuid:4fbe8971-0bc3-424c-9c26-36c3e1eff6b1');
  assert.equal(card.fn, 'Alice Example');
  assert.deepEqual(card.warnings, []);
  assert.deepEqual(card.entries, [
    { kind: 'address', value: 'alice@example.org', action: 'allow' },
    { kind: 'address', value: 'bob@example.net', action: 'allow' },
    { kind: 'address', value: 'grouped@example.com', action: 'allow' },
    { kind: 'domain', value: 'partner.example', action: 'allow' },
    { kind: 'domain', value: 'xn--bcher-kva.de', action: 'allow' },
    { kind: 'list', value: 'dev.lists.example.org', action: 'allow' },
    { kind: 'list', value: 'announce.example.org', action: 'allow' },
  ]);
});

test('vCard 3.0 as Apple Contacts writes it (LF endings, groups, type params, escapes)', () => {
  const text = [
    'BEGIN:VCARD',
    'VERSION:3.0',
    'PRODID:-//Apple Inc.//macOS 14.0//EN',
    'N:Smith;Carol;;;',
    'FN:Smith\\, Carol',
    'ORG:Example Corp;',
    'item1.EMAIL;type=INTERNET;type=pref:carol@example.com',
    'item1.X-ABLabel:_$!<Other>!$_',
    'EMAIL;type=INTERNET;type=HOME:carol.home@example.net',
    'TEL;type=CELL;type=VOICE:+1 555 0100',
    'UID:ABCD-1234',
    'REV:2024-01-01T00:00:00Z',
    'END:VCARD',
    '',
  ].join('\n');
  const card = parseContactCard(text);
  assert.equal(card.version, '3.0');
  assert.equal(card.fn, 'Smith, Carol');
  assert.equal(parseContactCard('BEGIN:VCARD\nVERSION:3.0\nFN:Smith\\; Carol\nEND:VCARD\n').fn, 'Smith; Carol');
  assert.equal(card.uid, 'ABCD-1234');
  assert.deepEqual(
    card.entries.map((e) => e.value),
    ['carol@example.com', 'carol.home@example.net'],
  );
});

test('VERSION need not be the first property (RFC 6350 asks for it; cards in the wild differ)', () => {
  const card = parseContactCard(
    crlf('BEGIN:VCARD', 'UID:tb-1', 'VERSION:4.0', 'FN:Dave', 'EMAIL;PREF=1:dave@example.org', 'END:VCARD'),
  );
  assert.equal(card.version, '4.0');
  assert.deepEqual(card.entries, [{ kind: 'address', value: 'dave@example.org', action: 'allow' }]);
});

test('folded lines are unfolded (space or tab, CRLF or LF), line numbers stay physical', () => {
  const card = parseContactCard(
    crlf(
      'BEGIN:VCARD',
      'VERSION:4.0',
      'FN:A very long name that a client',
      '  decided to fold',
      'EMAIL:some.rather.long.local.part@exam',
      ' ple.org',
      'X-TWOWAY-DOMAIN:sub.',
      '\texample.net',
      'END:VCARD',
    ),
  );
  assert.equal(card.fn, 'A very long name that a client decided to fold');
  assert.deepEqual(
    card.entries.map((e) => e.value),
    ['some.rather.long.local.part@example.org', 'sub.example.net'],
  );
  assertVCardError(crlf('BEGIN:VCARD', 'VERSION:4.0', 'FN:x', ' continued', 'BROKEN', 'END:VCARD'), 5, /without a ":"/);
});

test('X-TWOWAY-BLOCKED turns every entry of the card into a block', () => {
  const blocked = parseContactCard(
    crlf(
      'BEGIN:VCARD',
      'VERSION:4.0',
      'FN:Spam Inc',
      'EMAIL:sales@spam.example',
      'X-TWOWAY-DOMAIN:spam.example',
      'X-TWOWAY-LIST:offers.spam.example',
      'X-TWOWAY-BLOCKED:TRUE',
      'END:VCARD',
    ),
  );
  assert.deepEqual(
    blocked.entries.map((e) => `${e.kind}:${e.value}:${e.action}`),
    ['address:sales@spam.example:block', 'domain:spam.example:block', 'list:offers.spam.example:block'],
  );
  for (const value of ['true', 'True', ' TRUE ']) {
    const c = parseContactCard(crlf('BEGIN:VCARD', 'VERSION:4.0', 'EMAIL:a@b.org', `X-TWOWAY-BLOCKED:${value}`, 'END:VCARD'));
    assert.equal(c.entries[0]?.action, 'block', value);
  }
  const notBlocked = parseContactCard(crlf('BEGIN:VCARD', 'VERSION:4.0', 'EMAIL:a@b.org', 'X-TWOWAY-BLOCKED:FALSE', 'END:VCARD'));
  assert.equal(notBlocked.entries[0]?.action, 'allow');
  // Any TRUE wins over a FALSE: a card must never be unblocked by ambiguity.
  const both = parseContactCard(
    crlf('BEGIN:VCARD', 'VERSION:4.0', 'X-TWOWAY-BLOCKED:TRUE', 'EMAIL:a@b.org', 'X-TWOWAY-BLOCKED:FALSE', 'END:VCARD'),
  );
  assert.equal(both.entries[0]?.action, 'block');
  // Unreadable values are errors, never "not blocked".
  assertVCardError(crlf('BEGIN:VCARD', 'VERSION:4.0', 'EMAIL:a@b.org', 'X-TWOWAY-BLOCKED:yes', 'END:VCARD'), 4, /TRUE or FALSE/);
  assertVCardError(crlf('BEGIN:VCARD', 'VERSION:4.0', 'X-TWOWAY-BLOCKED;VALUE=BOOLEAN:maybe', 'END:VCARD'), 3, /TRUE or FALSE/);
});

test('unusable EMAIL values are skipped with a warning; duplicates collapse', () => {
  const card = parseContactCard(
    crlf(
      'BEGIN:VCARD',
      'VERSION:3.0',
      'FN:Eve',
      'EMAIL;TYPE=INTERNET:eve at example dot org',
      'EMAIL:',
      'EMAIL:Eve@Example.org',
      'EMAIL:mailto:eve@example.org?subject=hi',
      'EMAIL:mailto:%22e%20v%22@example.org',
      'EMAIL:mailto:%zz@example.org',
      'END:VCARD',
    ),
  );
  assert.deepEqual(card.entries, [
    { kind: 'address', value: 'eve@example.org', action: 'allow' },
    { kind: 'address', value: '"e v"@example.org', action: 'allow' },
  ]);
  assert.deepEqual(
    card.warnings.map((w) => w.line),
    [4, 5, 9],
  );
  assert.match(card.warnings[0]?.message ?? '', /not a mail address/);
});

test('UID and FN are optional; empty ones are null', () => {
  const card = parseContactCard(crlf('BEGIN:VCARD', 'VERSION:4.0', 'UID:', 'FN:', 'END:VCARD'));
  assert.equal(card.uid, null);
  assert.equal(card.fn, null);
  assert.deepEqual(card.entries, []);
  const bare = parseContactCard('BEGIN:VCARD\nVERSION:4.0\nEND:VCARD');
  assert.equal(bare.uid, null);
});

test('tolerated variations: BOM, blank lines, lower-case framing, trailing spaces on framing lines', () => {
  const card = parseContactCard('\uFEFFbegin:vcard \r\n\r\nversion:4.0\r\nemail:a@b.org\r\nend:vcard\r\n\r\n\r\n');
  assert.deepEqual(card.entries, [{ kind: 'address', value: 'a@b.org', action: 'allow' }]);
});

test('malformed cards throw VCardError naming the line and problem', () => {
  assertVCardError('', null, /empty input/);
  assertVCardError('\r\n\r\n', null, /empty input/);
  assertVCardError(crlf('VERSION:4.0', 'EMAIL:a@b.org', 'END:VCARD'), 1, /expected BEGIN:VCARD/);
  assertVCardError(crlf('BEGIN:VCALENDAR', 'VERSION:2.0', 'END:VCALENDAR'), 1, /expected BEGIN:VCARD/);
  assertVCardError(crlf('BEGIN:VCARD', 'VERSION:4.0', 'EMAIL:a@b.org'), 3, /missing END:VCARD/);
  assertVCardError(crlf('BEGIN:VCARD', 'FN:x', 'EMAIL:a@b.org', 'END:VCARD'), 1, /missing VERSION/);
  assertVCardError(crlf('BEGIN:VCARD', 'VERSION:2.1', 'END:VCARD'), 2, /unsupported VERSION "2\.1"/);
  assertVCardError(crlf('BEGIN:VCARD', 'VERSION:4.0', 'FN:x', 'VERSION:3.0', 'END:VCARD'), 4, /more than one VERSION/);
  assertVCardError(crlf('BEGIN:VCARD', 'VERSION:4.0', 'FN:x', 'this line has no colon', 'END:VCARD'), 4, /without a ":"/);
  assertVCardError(crlf('BEGIN:VCARD', 'VERSION:4.0', 'BAD NAME:x', 'END:VCARD'), 3, /invalid property name/);
  assertVCardError(crlf('BEGIN:VCARD', 'VERSION:4.0', ':novalue', 'END:VCARD'), 3, /invalid property name/);
  assertVCardError(crlf(' folded first', 'BEGIN:VCARD'), 1, /continuation line/);
  assertVCardError(
    crlf('BEGIN:VCARD', 'VERSION:4.0', 'END:VCARD', 'BEGIN:VCARD', 'VERSION:4.0', 'END:VCARD'),
    4,
    /content after END:VCARD/,
  );
  assertVCardError(crlf('BEGIN:VCARD', 'VERSION:4.0', 'BEGIN:VCARD', 'END:VCARD', 'END:VCARD'), 3, /nested/);
  assertVCardError(crlf('BEGIN:VCARD', 'VERSION:4.0', 'END:VEVENT', 'END:VCARD'), 3, /mismatched/);
  assertVCardError(crlf('BEGIN:VCARD', 'VERSION:4.0', 'UID:1', 'UID:2', 'END:VCARD'), 4, /more than one UID/);
  // Parameter errors come from ical.js, still with our line number.
  assertVCardError(crlf('BEGIN:VCARD', 'VERSION:4.0', 'EMAIL;=x:a@b.org', 'END:VCARD'), 3, /parameter/i);
  assertVCardError(crlf('BEGIN:VCARD', 'VERSION:3.0', 'TEL;CELL:+1 555', 'END:VCARD'), 3, /parameter/i);
  assertVCardError(crlf('BEGIN:VCARD', 'VERSION:4.0', 'EMAIL;TYPE="work:a@b.org', 'END:VCARD'), 3, /without a ":"/);
});

test('bad X-TWOWAY-DOMAIN and X-TWOWAY-LIST values are errors', () => {
  assertVCardError(crlf('BEGIN:VCARD', 'VERSION:4.0', 'X-TWOWAY-DOMAIN:not a domain', 'END:VCARD'), 3, /X-TWOWAY-DOMAIN/);
  assertVCardError(crlf('BEGIN:VCARD', 'VERSION:4.0', 'X-TWOWAY-DOMAIN:', 'END:VCARD'), 3, /empty domain/);
  assertVCardError(crlf('BEGIN:VCARD', 'VERSION:4.0', 'X-TWOWAY-DOMAIN:a@b.org', 'END:VCARD'), 3, /X-TWOWAY-DOMAIN/);
  assertVCardError(crlf('BEGIN:VCARD', 'VERSION:4.0', 'X-TWOWAY-LIST:nodots', 'END:VCARD'), 3, /X-TWOWAY-LIST/);
  assertVCardError(crlf('BEGIN:VCARD', 'VERSION:4.0', 'X-TWOWAY-LIST:', 'END:VCARD'), 3, /X-TWOWAY-LIST/);
});

test('buildContactCard writes vCard 4.0 with CRLF and parses back to the same entries', () => {
  const text = buildContactCard({
    uid: 'u-1',
    fn: 'Alice',
    emails: ['Alice@Example.org'],
    domains: ['@Partner.Example', 'bücher.de'],
    lists: ['Dev <dev.lists.example.org>'],
  });
  assert.equal(
    text,
    crlf(
      'BEGIN:VCARD',
      'VERSION:4.0',
      'UID:u-1',
      'FN:Alice',
      'EMAIL:alice@example.org',
      'X-TWOWAY-DOMAIN:partner.example',
      'X-TWOWAY-DOMAIN:xn--bcher-kva.de',
      'X-TWOWAY-LIST:dev.lists.example.org',
      'END:VCARD',
    ),
  );
  const parsed = parseContactCard(text);
  assert.equal(parsed.uid, 'u-1');
  assert.equal(parsed.fn, 'Alice');
  assert.deepEqual(parsed.entries, [
    { kind: 'address', value: 'alice@example.org', action: 'allow' },
    { kind: 'domain', value: 'partner.example', action: 'allow' },
    { kind: 'domain', value: 'xn--bcher-kva.de', action: 'allow' },
    { kind: 'list', value: 'dev.lists.example.org', action: 'allow' },
  ]);
});

test('buildContactCard: blocked, FN fallbacks, escaping and folding', () => {
  const blocked = buildContactCard({ uid: 'b', domains: ['spam.example'], blocked: true });
  assert.match(blocked, /\r\nFN:@spam\.example\r\n/);
  assert.match(blocked, /\r\nX-TWOWAY-BLOCKED:TRUE\r\nEND:VCARD\r\n$/);
  assert.deepEqual(parseContactCard(blocked).entries, [{ kind: 'domain', value: 'spam.example', action: 'block' }]);

  assert.match(buildContactCard({ uid: 'x', emails: ['a@b.org'] }), /\r\nFN:a@b\.org\r\n/);
  assert.match(buildContactCard({ uid: 'x', lists: ['l.example.org'] }), /\r\nFN:l\.example\.org\r\n/);
  assert.match(buildContactCard({ uid: 'only-uid' }), /\r\nFN:only-uid\r\n/);
  assert.match(buildContactCard({ uid: 'x', fn: '   ', emails: ['a@b.org'] }), /\r\nFN:a@b\.org\r\n/);

  const tricky = 'Smith, John; "Jr." \\ Esq.\nSecond line\u0007';
  const withQuoted = buildContactCard({ uid: 'q;1,2', fn: tricky, emails: ['"a,b;c"@x.org'] });
  // RFC 6350: ";" is escaped only in compound values, so FN and EMAIL keep it bare.
  assert.match(withQuoted, /\r\nFN:Smith\\, John; "Jr\." \\\\ Esq\.\\nSecond line\r\n/);
  assert.match(withQuoted, /\r\nEMAIL:"a\\,b;c"@x\.org\r\n/);
  assert.match(withQuoted, /\r\nUID:q;1\\,2\r\n/);
  const back = parseContactCard(withQuoted);
  assert.equal(back.fn, 'Smith, John; "Jr." \\ Esq.\nSecond line');
  assert.equal(back.uid, 'q;1,2');
  assert.deepEqual(back.entries, [{ kind: 'address', value: '"a,b;c"@x.org', action: 'allow' }]);

  const longName = 'Ünïcödé '.repeat(30);
  const long = buildContactCard({ uid: 'l', fn: longName, emails: [`${'x'.repeat(60)}@${'sub.'.repeat(20)}example.org`] });
  for (const physical of long.split('\r\n')) {
    assert.ok(Buffer.byteLength(physical, 'utf8') <= 75, `line over 75 octets: ${physical}`);
    assert.ok(!physical.includes('\uFFFD'));
  }
  assert.equal(parseContactCard(long).fn, longName.trim());
});

test('buildContactCard rejects invalid input', () => {
  assert.throws(() => buildContactCard({ uid: '' }), RangeError);
  assert.throws(() => buildContactCard({ uid: 'x', emails: ['not an address'] }), ReplyError);
  assert.throws(() => buildContactCard({ uid: 'x', domains: ['bad domain'] }), ReplyError);
  assert.throws(() => buildContactCard({ uid: 'x', lists: ['nodots'] }), /Bad List-Id syntax/);
});

test('foldLine keeps multi-byte characters whole', () => {
  assert.equal(foldLine('short'), 'short');
  const exact = 'a'.repeat(75);
  assert.equal(foldLine(exact), exact);
  assert.equal(foldLine('a'.repeat(76)), `${'a'.repeat(75)}\r\n a`);
  // 74 ASCII octets + a 2-octet "é" would be 76: the "é" moves to the next line.
  assert.equal(foldLine(`${'a'.repeat(74)}é`), `${'a'.repeat(74)}\r\n é`);
  // Astral characters (surrogate pairs in JS) are never split.
  const emoji = '😀'.repeat(40);
  const folded = foldLine(emoji);
  assert.equal(folded.replace(/\r\n /g, ''), emoji);
  for (const physical of folded.split('\r\n')) assert.ok(Buffer.byteLength(physical) <= 75);
});

test('escapeText and unescapeText', () => {
  assert.equal(escapeText('a,b;c\\d'), 'a\\,b;c\\\\d');
  assert.equal(escapeText('a,b;c\\d', { compound: true }), 'a\\,b\\;c\\\\d');
  assert.equal(unescapeText('a\\,b\\;c\\\\d\\nE\\Nf'), 'a,b;c\\d\nE\nf');
  // A literal backslash before ";" survives: one pass, left to right.
  assert.equal(unescapeText('x\\\\;y'), 'x\\;y');
  // Unknown escapes keep their backslash.
  assert.equal(unescapeText('\\t\\:'), '\\t\\:');
  assert.equal(escapeText('one\r\ntwo\nthree\rfour'), 'one\\ntwo\\nthree\\nfour');
  assert.equal(escapeText('tab\tkept, bell\u0007 gone'), 'tab\tkept\\, bell gone');
});

test('newUid gives distinct random UUIDs', () => {
  const a = newUid();
  assert.match(a, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.notEqual(a, newUid());
});

test('X-TWOWAY-EXPECT: parameters in any case and order, quoted UNTIL, USES optional, other params ignored', () => {
  const card = parseContactCard(
    crlf(
      'BEGIN:VCARD',
      'VERSION:4.0',
      'UID:e1',
      'item1.x-twoway-expect;until="20261202T100000Z";Purpose=Ownership-Confirmation;X-NOTE=hi:@Shop.Example',
      'X-TWOWAY-EXPECT;PURPOSE=ownership-confirmation;UNTIL=20261203T000000Z;USES=3:shop.example',
      'END:VCARD',
    ),
  );
  assert.deepEqual(card.entries, [
    { kind: 'expect', value: 'shop.example', action: 'allow', expect: { purpose: 'ownership-confirmation', until: new Date('2026-12-02T10:00:00Z'), uses: null } },
    { kind: 'expect', value: 'shop.example', action: 'allow', expect: { purpose: 'ownership-confirmation', until: new Date('2026-12-03T00:00:00Z'), uses: 3 } },
  ]);
});

test('bad X-TWOWAY-EXPECT values are errors naming the line', () => {
  const card = (prop: string, extra = 'FN:x') => crlf('BEGIN:VCARD', 'VERSION:4.0', extra, prop, 'END:VCARD');
  assertVCardError(card('X-TWOWAY-EXPECT;UNTIL=20261202T100000Z:shop.example'), 4, /missing PURPOSE/);
  assertVCardError(card('X-TWOWAY-EXPECT;PURPOSE=ownership-confirmation:shop.example'), 4, /missing UNTIL/);
  assertVCardError(card('X-TWOWAY-EXPECT;PURPOSE=a;PURPOSE=b;UNTIL=20261202T100000Z:shop.example'), 4, /more than one PURPOSE/);
  assertVCardError(card('X-TWOWAY-EXPECT;PURPOSE=ownership-confirmation;UNTIL=2026-12-02:shop.example'), 4, /UNTIL .* not a UTC timestamp/);
  assertVCardError(card('X-TWOWAY-EXPECT;PURPOSE=ownership-confirmation;UNTIL=20261302T100000Z:shop.example'), 4, /UNTIL/);
  assertVCardError(card('X-TWOWAY-EXPECT;PURPOSE=ownership-confirmation;UNTIL=20261202T100000:shop.example'), 4, /UNTIL/);
  assertVCardError(card('X-TWOWAY-EXPECT;PURPOSE=ownership-confirmation;UNTIL=20261202T100000Z;USES=-1:shop.example'), 4, /USES/);
  assertVCardError(card('X-TWOWAY-EXPECT;PURPOSE=ownership-confirmation;UNTIL=20261202T100000Z;USES=10000:shop.example'), 4, /USES/);
  assertVCardError(card('X-TWOWAY-EXPECT;PURPOSE=ownership-confirmation;UNTIL=20261202T100000Z:not a domain'), 4, /X-TWOWAY-EXPECT/);
  assertVCardError(card('X-TWOWAY-EXPECT;PURPOSE=ownership-confirmation;UNTIL=20261202T100000Z:shop.example', 'X-TWOWAY-BLOCKED:TRUE'), 4, /BLOCKED/);
});

test('buildExpectCard parses back; rewriteExpectCard counts down, removes used-up and expired entries', () => {
  const until = new Date('2026-12-02T10:00:00.400Z');
  const text = buildExpectCard({ uid: 'u1', domain: '@Shop.Example', purpose: 'ownership-confirmation', until, uses: 2 });
  assert.match(text.replace(/\r\n /g, ''), /^BEGIN:VCARD\r\nVERSION:4\.0\r\nUID:u1\r\nFN:shop\.example \(expected\)\r\nX-TWOWAY-EXPECT;PURPOSE=ownership-confirmation;UNTIL=20261202T100000Z;USES=2:shop\.example\r\nEND:VCARD\r\n$/);
  const [entry] = parseContactCard(text).entries;
  const terms = entry!.expect!;
  assert.deepEqual(terms, { purpose: 'ownership-confirmation', until: new Date('2026-12-02T10:00:00Z'), uses: 2 });
  const now = new Date('2026-12-01T00:00:00Z');
  assert.equal(expectLive(terms, now), true);
  assert.equal(expectLive(terms, new Date('2026-12-02T10:00:00Z')), false);
  assert.equal(expectLive({ ...terms, uses: 0 }, now), false);

  const once = rewriteExpectCard(text, { now, consume: { domain: 'shop.example', terms } });
  assert.equal(once.changed, true);
  const unfolded = (t: string | null) => (t ?? '').replace(/\r\n /g, '');
  assert.equal(unfolded(once.text), unfolded(text).replace(/USES=2/, 'USES=1'));
  const twice = rewriteExpectCard(once.text!, { now, consume: { domain: 'shop.example', terms: { ...terms, uses: 1 } } });
  assert.deepEqual(twice, { text: null, changed: true }, 'a card of nothing but the used-up entry is deleted');

  // Expired: removed; other lines stay byte for byte; the card stays while it has other content.
  const mixed = crlf('BEGIN:VCARD', 'VERSION:4.0', 'UID:u2', 'EMAIL:news@shop.example', 'X-TWOWAY-EXPECT;PURPOSE=ownership-confirmation;UNTIL=20261202T100000Z:shop.example', 'END:VCARD');
  assert.deepEqual(rewriteExpectCard(mixed, { now }), { text: mixed, changed: false });
  assert.deepEqual(rewriteExpectCard(mixed, { now: new Date('2026-12-03T00:00:00Z') }), {
    text: crlf('BEGIN:VCARD', 'VERSION:4.0', 'UID:u2', 'EMAIL:news@shop.example', 'END:VCARD'),
    changed: true,
  });
  // No USES: nothing to count.
  const unlimited = rewriteExpectCard(mixed, { now, consume: { domain: 'shop.example', terms: { ...terms, uses: null } } });
  assert.deepEqual(unlimited, { text: mixed, changed: false });
  assert.throws(() => buildExpectCard({ uid: 'u', domain: 'shop.example', purpose: 'ownership-confirmation', until, uses: 10_000 }), RangeError);
});

test('vCard 3.0 as CardDAV clients send it: photos, structured values, escaped colons, Apple labels', () => {
  const lines = [
    'BEGIN:VCARD',
    'VERSION:3.0',
    'PRODID:-//Apple Inc.//iPhone OS 17.0//EN',
    'N:Appleseed;Jane;;;',
    'FN:Jane Appleseed',
    'ORG:Apple Inc.;Engineering',
    'item1.EMAIL;type=INTERNET;type=pref:jane@apple.test',
    'EMAIL;TYPE=INTERNET,HOME:jane@home.test',
    'item1.X-ABLabel:_$!<Other>!$_',
    'item2.ADR;type=HOME;type=pref:;;1 Infinite Loop;Cupertino;CA;95014;USA',
    'item3.URL;type=pref:http\\://www.example.com',
    'BDAY;value=date:1980-05-06',
    'X-SOCIALPROFILE;type=twitter;x-user=jane:http://twitter.com/jane',
    'IMPP;X-SERVICE-TYPE=Skype;type=HOME;type=pref:skype:jane',
    'PHOTO;ENCODING=b;TYPE=JPEG:/9j/4AAQSkZJRgABAQAAAQABAAD',
    'CATEGORIES:friends,work',
    'NOTE:Time: 10:00',
    'REV:2023-01-01T00:00:00Z',
    'UID:3A1F-JANE',
    'END:VCARD',
  ];
  const card = parseContactCard(lines.join('\n'));
  assert.equal(card.version, '3.0');
  assert.equal(card.uid, '3A1F-JANE');
  assert.deepEqual(card.entries.map((e) => e.value), ['jane@apple.test', 'jane@home.test']);
  assert.deepEqual(card.warnings, []);
});
