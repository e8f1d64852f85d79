import { test } from 'node:test';
import assert from 'node:assert/strict';
import { keyRecordTesting, keyRecordValue, parseKeyRecord, parseTagList, rawPublicKey, splitKeyId } from './twm-key-record.ts';
import { testKey } from '../../test/helpers/twm-vectors.ts';

const P = '65i0ouN7qrqIslBNd4BfrM5ASVhmw0PgNwOYgVDcBKA=';
const GOOD = `v=TWM1; k=ed25519; p=${P}`;
const P31 = Buffer.alloc(31, 7).toString('base64');
const P33 = Buffer.alloc(33, 7).toString('base64');

// Section 3.2's parsing rules as a table: [rule, what, TXT answer, usable].
const CASES: Array<[string, string, string[][], boolean]> = [
  ['-', 'the A.1 record', [[GOOD]], true],
  ['-', 'split over character-strings, joined without separators', [['v=TWM1; k=ed2', '5519; p=65i0ouN7qrqIslBNd4Bf', `rM5ASVhmw0PgNwOYgVDcBKA=`]], true],
  ['-', 'trailing ";"', [[`${GOOD};`]], true],
  ['-', 'trailing "; " (blanks after the final ";")', [[`${GOOD}; `]], true],
  ['-', 'no blanks at all', [[`v=TWM1;k=ed25519;p=${P}`]], true],
  ['-', 'blanks around "=" and tags', [[`v=TWM1 ;  k = ed25519\t; p =  ${P}  `]], true],
  ['-', 'folding whitespace (CRLF + blank) between tags', [[`v=TWM1;\r\n k=ed25519; p=${P}`]], true],
  ['1', 'leading whitespace before v=TWM1', [[`  ${GOOD}`]], true],
  ['1', 'other TXT records at the name are ignored', [['v=spf1 -all'], [GOOD], ['google-site-verification=x']], true],
  ['1', 'no TXT record at all', [], false],
  ['1', 'only records not starting with v=TWM1', [['v=DKIM1; k=ed25519; p=' + P]], false],
  ['1', 'a v=TWM10 record beside the TWM1 one is another version: ignored', [[`v=TWM10; k=ed25519; p=${P}`], [GOOD]], true],
  ['1', 'only a v=TWM10 record (no exact v=TWM1 token)', [[`v=TWM10; k=ed25519; p=${P}`]], false],
  ['1', 'v=TWM1x is not the token TWM1', [[`v=TWM1x; k=ed25519; p=${P}`]], false],
  ['1', 'two TWM1 records', [[GOOD], [`v=TWM1; k=ed25519; p=${testKey('b.example').publicKey.export({ format: 'jwk' }).x ?? ''}`]], false],
  ['1', '"v = TWM1" does not start with v=TWM1 (ignored, so none remains)', [[`v = TWM1; k=ed25519; p=${P}`]], false],
  ['1', 'v not the first tag (record ignored)', [[`k=ed25519; v=TWM1; p=${P}`]], false],
  ['2', 'v=TWM10: starts with v=TWM1 but v is not exactly TWM1', [[`v=TWM10; k=ed25519; p=${P}`]], false],
  ['2', 'tag name twice', [[`${GOOD}; k=ed25519`]], false],
  ['2', 'p twice', [[`${GOOD}; p=${P}`]], false],
  ['2', 'syntax error: empty tag-spec in the middle', [[`v=TWM1;; k=ed25519; p=${P}`]], false],
  ['2', 'syntax error: tag without "="', [[`v=TWM1; k; p=${P}`]], false],
  ['2', 'syntax error: tag name starting with a digit', [[`${GOOD}; 1x=y`]], false],
  ['2', 'syntax error: control character in a value', [[`${GOOD}; n=a\u0001b`]], false],
  ['2', 'missing k', [[`v=TWM1; p=${P}`]], false],
  ['2', 'missing p', [['v=TWM1; k=ed25519']], false],
  ['2', 'k=rsa', [[`v=TWM1; k=rsa; p=${P}`]], false],
  ['2', 'k=Ed25519 (values are case-sensitive)', [[`v=TWM1; k=Ed25519; p=${P}`]], false],
  ['2', 'empty p: revoked', [['v=TWM1; k=ed25519; p=']], false],
  ['2', 'p of 31 octets', [[`v=TWM1; k=ed25519; p=${P31}`]], false],
  ['2', 'p of 33 octets', [[`v=TWM1; k=ed25519; p=${P33}`]], false],
  ['2', 'p not base64', [[`v=TWM1; k=ed25519; p=${P.replace('6', '*')}`]], false],
  ['2', 'p without padding', [[`v=TWM1; k=ed25519; p=${P.replace('=', '')}`]], false],
  ['2', 'p in base64url (b.example key, which has a "/")', [['v=TWM1; k=ed25519; p=FQ5klvGtnIi_lvB2kCFZu7hPZOyzKoMePr9nyTQZsKI=']], false],
  ['3', 'whitespace inside p is removed before decoding', [[`v=TWM1; k=ed25519; p=65i0ouN7qrqIslBN d4BfrM5ASVhm\tw0PgNwOYgVDcBKA=`]], true],
  ['3', 'unknown tags are ignored', [[`${GOOD}; t=y; n=a note with words; x_1=`]], true],
  ['3', 'tag names are case-sensitive: K is unknown, so k is missing', [[`v=TWM1; K=ed25519; p=${P}`]], false],
  ['3', 'tag names are case-sensitive: P is unknown, so p is missing', [[`v=TWM1; k=ed25519; P=${P}`]], false],
];

for (const [rule, what, txt, usable] of CASES) {
  test(`key record rule ${rule}: ${what} -> ${usable ? 'usable' : 'unusable'}`, () => {
    const key = parseKeyRecord(txt);
    if (!usable) return assert.equal(key, null);
    assert.ok(key);
    assert.equal(key.asymmetricKeyType, 'ed25519');
    assert.equal(rawPublicKey(key).toString('base64'), P);
  });
}

test('keyRecordValue publishes the raw key and parses back', () => {
  const raw = rawPublicKey(testKey('a.example').publicKey);
  assert.equal(keyRecordValue(raw), GOOD);
  assert.ok(parseKeyRecord([[keyRecordValue(raw)]]));
  assert.throws(() => keyRecordValue(Buffer.alloc(31)), RangeError);
});

test('testing mode (6.6): t=y is published, read, and changes nothing for verification', () => {
  const raw = rawPublicKey(testKey('a.example').publicKey);
  const testing = keyRecordValue(raw, { testing: true });
  assert.match(testing, /^v=TWM1; k=ed25519; t=y; p=/);
  assert.ok(parseKeyRecord([[testing]]));
  assert.equal(keyRecordTesting([[testing]]), true);
  assert.equal(keyRecordTesting([[keyRecordValue(raw)]]), false);
  assert.equal(keyRecordTesting([[testing.replace('t=y', 't=n')]]), false);
  assert.equal(keyRecordTesting([[testing], [testing]]), false, 'two TWM1 records: no usable record at all');
  assert.equal(keyRecordTesting([['v=TWM2; t=y']]), false, "another version's record");
});

test('parseTagList keeps order and values with inner blanks', () => {
  assert.deepEqual([...(parseTagList('v=TWM1; n=two  words;') ?? [])], [['v', 'TWM1'], ['n', 'two  words']]);
  assert.equal(parseTagList(''), null);
});

const KEYIDS: Array<[string, { selector: string; domain: string } | null]> = [
  ['s1._twoway.a.example', { selector: 's1', domain: 'a.example' }],
  ['2026-01._twoway.mail.b.example', { selector: '2026-01', domain: 'mail.b.example' }],
  ['s1._twoway.x._twoway.a.example', null], // the domain part would hold an underscore label
  ['S1._twoway.a.example', null],
  ['s1._twoway.A.example', null],
  ['s1._twoway.a.example.', null],
  ['s1._twoway.example', null],
  ['-s1._twoway.a.example', null],
  ['s1-._twoway.a.example', null],
  ['s_1._twoway.a.example', null],
  ['._twoway.a.example', null],
  ['s1._twoway.', null],
  ['s1.a.example', null],
  [`${'a'.repeat(64)}._twoway.a.example`, null],
  ['s1._twoway.a..example', null],
  ['s1._twoway.-a.example', null],
];

for (const [keyid, expected] of KEYIDS) {
  test(`splitKeyId(${JSON.stringify(keyid.length > 40 ? keyid.slice(0, 40) + '…' : keyid)})`, () => assert.deepEqual(splitKeyId(keyid), expected));
}
