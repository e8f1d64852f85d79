import { test } from 'node:test';
import assert from 'node:assert/strict';
import { splitVCards } from './vcard-split.ts';

test('splits an export into cards with their starting lines, and reports what is outside', () => {
  const file = [
    'BEGIN:VCARD', 'VERSION:4.0', 'FN:A', 'END:VCARD',
    'garbage',
    'begin:vcard', 'VERSION:3.0', 'FN:B', ' folded', 'end:vcard',
    '',
    'BEGIN:VCARD', 'VERSION:4.0',
    'BEGIN:VCARD', 'VERSION:4.0', 'FN:C', 'END:VCARD',
    'BEGIN:VCARD', 'FN:open at the end',
  ].join('\n');
  const r = splitVCards(file);
  assert.deepEqual(r.cards.map((c) => c.line), [1, 6, 14]);
  assert.equal(r.cards[1]!.text, 'begin:vcard\r\nVERSION:3.0\r\nFN:B\r\n folded\r\nend:vcard\r\n');
  assert.deepEqual(r.problems, [
    { line: 5, problem: 'text outside a BEGIN:VCARD … END:VCARD block' },
    { line: 12, problem: 'card has no END:VCARD before the next BEGIN:VCARD' },
    { line: 18, problem: 'card has no END:VCARD' },
  ]);
});
