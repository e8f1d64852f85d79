import { test } from 'node:test';
import assert from 'node:assert/strict';
import { normaliseListId, senderKey } from './screener.ts';

test('senderKey prefers the header From, then the envelope sender', () => {
  assert.equal(senderKey('alice@example.org', 'bounces@lists.example.org'), 'alice@example.org');
  assert.equal(senderKey(null, 'Bounces@Example.ORG'), 'bounces@example.org');
  assert.equal(senderKey(' Alice@Example.org ', null), 'alice@example.org');
  assert.equal(senderKey(null, null), 'unknown');
  // The null reverse-path and empty values count as absent.
  assert.equal(senderKey('', ''), 'unknown');
  assert.equal(senderKey(null, ''), 'unknown');
  assert.equal(senderKey('', 'x@y.org'), 'x@y.org');
});

test('normaliseListId extracts the id from List-Id header values', () => {
  const cases: Array<[string, string | null]> = [
    ['Developers <dev.lists.example.org>', 'dev.lists.example.org'],
    ['<Dev.Lists.Example.ORG>', 'dev.lists.example.org'],
    ['dev.lists.example.org', 'dev.lists.example.org'],
    ['  dev.lists.example.org  ', 'dev.lists.example.org'],
    ['"The <best> list" <best.example.org>', 'best.example.org'],
    ['Folded\r\n <folded.example.org>', 'folded.example.org'],
    ["<a+b_c-d.list-id.example.org>", 'a+b_c-d.list-id.example.org'],
    ['List <  spaced.example.org  >', 'spaced.example.org'],
    // RFC 2919: unqualified ids use the "localhost" namespace, still dotted.
    ['<mylist.localhost>', 'mylist.localhost'],
    ['', null],
    ['   ', null],
    ['<>', null],
    ['nodots', null],
    ['<nodots>', null],
    ['Name <unterminated.example.org', null],
    ['two words.example.org', null],
    ['<a..b.org>', null],
    ['<.a.b.org>', null],
    ['<a.b.org.>', null],
    ['<a b.org>', null],
    [`<${'a'.repeat(250)}.example.org>`, null],
  ];
  for (const [header, expected] of cases) assert.equal(normaliseListId(header), expected, JSON.stringify(header));
});
