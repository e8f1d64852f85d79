import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseContactCard } from './index-entries.ts';
import { VCardError } from './parse.ts';

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
    { kind: 'expect', value: 'shop.example', action: 'allow', expect: { purpose: 'ownership-confirmation', until: new Date('2026-12-02T10:00:00Z'), uses: null, from: null, requireMarker: false } },
    { kind: 'expect', value: 'shop.example', action: 'allow', expect: { purpose: 'ownership-confirmation', until: new Date('2026-12-03T00:00:00Z'), uses: 3, from: null, requireMarker: false } },
  ]);
});

test('X-TWOWAY-EXPECT: FROM is indexed as a second entry of the same property; MARKER=REQUIRED', () => {
  const card = parseContactCard(
    crlf('BEGIN:VCARD', 'VERSION:4.0', 'UID:e2', 'X-TWOWAY-EXPECT;PURPOSE=ownership-confirmation;UNTIL=20261202T100000Z;USES=3;from=Mailer.Example;Marker=required:shop.example', 'END:VCARD'),
  );
  const terms = { purpose: 'ownership-confirmation', until: new Date('2026-12-02T10:00:00Z'), uses: 3, from: 'mailer.example', requireMarker: true };
  assert.deepEqual(card.entries, [
    { kind: 'expect', value: 'shop.example', action: 'allow', expect: terms },
    { kind: 'expect', value: 'mailer.example', action: 'allow', expect: terms, declaredFor: 'shop.example' },
  ]);
  // FROM equal to the domain: one entry.
  const same = parseContactCard(crlf('BEGIN:VCARD', 'VERSION:4.0', 'X-TWOWAY-EXPECT;PURPOSE=ownership-confirmation;UNTIL=20261202T100000Z;FROM=shop.example:shop.example', 'END:VCARD'));
  assert.equal(same.entries.length, 1);
});

test('X-TWOWAY-EXPECT: a public suffix, a list or a malformed FROM, or a bad MARKER, is an error', () => {
  const card = (prop: string) => crlf('BEGIN:VCARD', 'VERSION:4.0', 'FN:x', prop, 'END:VCARD');
  const head = 'X-TWOWAY-EXPECT;PURPOSE=ownership-confirmation;UNTIL=20261202T100000Z';
  assertVCardError(card(`${head}:co.uk`), 4, /public suffix/);
  assertVCardError(card(`${head}:github.io`), 4, /public suffix/);
  assertVCardError(card(`${head}:com`), 4, /public suffix/);
  assertVCardError(card(`${head};FROM=com:shop.example`), 4, /FROM .*public suffix/);
  assertVCardError(card(`${head};FROM=a.example,b.example:shop.example`), 4, /FROM .* not one domain/);
  assertVCardError(card(`${head};FROM="a.example b.example":shop.example`), 4, /FROM .* not one domain/);
  assertVCardError(card(`${head};FROM=:shop.example`), 4, /FROM/);
  assertVCardError(card(`${head};FROM=-bad-.example:shop.example`), 4, /FROM/);
  assertVCardError(card(`${head};MARKER=maybe:shop.example`), 4, /MARKER/);
  assertVCardError(card(`${head};FROM=a.example;FROM=b.example:shop.example`), 4, /more than one FROM/);
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
