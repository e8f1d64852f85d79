import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildExpectCard, expectLive, rewriteExpectCard } from './expected.ts';
import { parseContactCard } from './index-entries.ts';

const crlf = (...lines: string[]): string => lines.join('\r\n') + '\r\n';

test('buildExpectCard parses back; rewriteExpectCard counts down, removes used-up and expired entries', () => {
  const until = new Date('2026-12-02T10:00:00.400Z');
  const text = buildExpectCard({ uid: 'u1', domain: '@Shop.Example', purpose: 'ownership-confirmation', until, uses: 2 });
  assert.match(text.replace(/\r\n /g, ''), /^BEGIN:VCARD\r\nVERSION:4\.0\r\nUID:u1\r\nFN:shop\.example \(expected\)\r\nX-TWOWAY-EXPECT;PURPOSE=ownership-confirmation;UNTIL=20261202T100000Z;USES=2:shop\.example\r\nEND:VCARD\r\n$/);
  const [entry] = parseContactCard(text).entries;
  const terms = entry!.expect!;
  assert.deepEqual(terms, { purpose: 'ownership-confirmation', until: new Date('2026-12-02T10:00:00Z'), uses: 2, from: null, requireMarker: false });
  const now = new Date('2026-12-01T00:00:00Z');
  assert.equal(expectLive(terms, now), true);
  assert.equal(expectLive(terms, new Date('2026-12-02T10:00:00Z')), false);
  assert.equal(expectLive({ ...terms, uses: 0 }, now), false);

  const once = rewriteExpectCard(text, { now, consume: { domain: 'shop.example', terms } });
  assert.equal(once.changed, true);
  const unfolded = (t: string | null) => (t ?? '').replace(/\r\n /g, '');
  assert.equal(unfolded(once.text), unfolded(text).replace(/USES=2/, 'USES=1'));
  const twice = rewriteExpectCard(once.text!, { now, consume: { domain: 'shop.example', terms: { ...terms, uses: 1 } } });
  assert.deepEqual(twice, { text: null, changed: true, consumed: true }, 'a card of nothing but the used-up entry is deleted');

  // Expired: removed; other lines stay byte for byte; the card stays while it has other content.
  const mixed = crlf('BEGIN:VCARD', 'VERSION:4.0', 'UID:u2', 'EMAIL:news@shop.example', 'X-TWOWAY-EXPECT;PURPOSE=ownership-confirmation;UNTIL=20261202T100000Z:shop.example', 'END:VCARD');
  assert.deepEqual(rewriteExpectCard(mixed, { now }), { text: mixed, changed: false, consumed: true });
  // The last use already taken (the terms no longer match any live entry): nothing consumed.
  assert.equal(rewriteExpectCard(once.text!, { now, consume: { domain: 'shop.example', terms } }).consumed, false);
  assert.deepEqual(rewriteExpectCard(mixed, { now: new Date('2026-12-03T00:00:00Z') }), {
    text: crlf('BEGIN:VCARD', 'VERSION:4.0', 'UID:u2', 'EMAIL:news@shop.example', 'END:VCARD'),
    changed: true,
    consumed: true,
  });
  // No USES: nothing to count.
  const unlimited = rewriteExpectCard(mixed, { now, consume: { domain: 'shop.example', terms: { ...terms, uses: null } } });
  assert.deepEqual(unlimited, { text: mixed, changed: false, consumed: true });
  assert.throws(() => buildExpectCard({ uid: 'u', domain: 'shop.example', purpose: 'ownership-confirmation', until, uses: 10_000 }), RangeError);
});

test('buildExpectCard writes FROM and MARKER=REQUIRED; a use of the declared domain counts down the one property', () => {
  const until = new Date('2026-12-02T10:00:00Z');
  const text = buildExpectCard({ uid: 'u3', domain: 'shop.example', purpose: 'ownership-confirmation', until, uses: 2, from: 'Mailer.Example', requireMarker: true });
  assert.match(text.replace(/\r\n /g, ''), /\r\nX-TWOWAY-EXPECT;PURPOSE=ownership-confirmation;UNTIL=20261202T100000Z;USES=2;FROM=mailer\.example;MARKER=REQUIRED:shop\.example\r\n/);
  const entries = parseContactCard(text).entries;
  assert.deepEqual(entries.map((e) => [e.value, e.declaredFor]), [['shop.example', undefined], ['mailer.example', 'shop.example']]);
  const terms = entries[1]!.expect!;
  const once = rewriteExpectCard(text, { now: new Date('2026-12-01T00:00:00Z'), consume: { domain: entries[1]!.declaredFor!, terms } });
  assert.match((once.text ?? '').replace(/\r\n /g, ''), /;USES=1;FROM=mailer\.example;MARKER=REQUIRED:shop\.example\r\n/);
});
