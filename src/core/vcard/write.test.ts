import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ReplyError } from '../errors.ts';
import { parseContactCard } from './index-entries.ts';
import { unescapeText } from './parse.ts';
import { buildContactCard, escapeText, foldLine, newUid, setBlocked } from './write.ts';

const crlf = (...lines: string[]): string => lines.join('\r\n') + '\r\n';

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

describe('setBlocked', () => {
  const card = 'BEGIN:VCARD\r\nVERSION:4.0\r\nUID:u1\r\nFN:Ann\r\nEMAIL:ann@example.org\r\nNOTE:a long note that was\r\n  folded by its client\r\nEND:VCARD\r\n';
  test('adds X-TWOWAY-BLOCKED:TRUE before END:VCARD and keeps every other line as written', () => {
    const blocked = setBlocked(card, true);
    assert.equal(blocked, card.replace('END:VCARD', 'X-TWOWAY-BLOCKED:TRUE\r\nEND:VCARD'));
    assert.equal(parseContactCard(blocked).entries[0]?.action, 'block');
  });
  test('removes every X-TWOWAY-BLOCKED property (grouped, with parameters, folded) and nothing else', () => {
    const marked = card.replace('END:VCARD', 'item1.x-twoway-blocked;X-A=1:TRUE\r\nX-TWOWAY-BLOCKED:\r\n FALSE\r\nEND:VCARD');
    assert.equal(setBlocked(marked, false), card);
    assert.equal(setBlocked(setBlocked(card, true), true), setBlocked(card, true), 'blocking twice writes one property');
  });
});
