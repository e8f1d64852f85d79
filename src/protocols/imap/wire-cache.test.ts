import assert from 'node:assert/strict';
import test from 'node:test';
import { parseStructure } from '../../core/mime-structure.ts';
import { imapWireText } from '../../core/imap-wire.ts';
import { WireCache } from './wire-cache.ts';

const message = (subject: string) => Buffer.from(`From: a@b.test\r\nTo: c@d.test\r\nSubject: ${subject}\r\nMessage-ID: <${subject}@b.test>\r\n\r\nHello.\r\n`);

test('imapWireText gives the ENVELOPE, BODYSTRUCTURE and BODY wire forms', () => {
  const r = imapWireText(parseStructure(message('hi')));
  assert.equal(r.envelope, '(NIL "hi" ((NIL NIL "a" "b.test")) ((NIL NIL "a" "b.test")) ((NIL NIL "a" "b.test")) ((NIL NIL "c" "d.test")) NIL NIL NIL "<hi@b.test>")');
  assert.equal(r.bodyStructure, '("text" "plain" ("charset" "us-ascii") NIL NIL "7BIT" 8 1 NIL NIL NIL NIL)');
  assert.equal(r.body, '("text" "plain" ("charset" "us-ascii") NIL NIL "7BIT" 8 1)');
});

test('the wire cache stays within its budget, dropping the oldest entries first; 0 keeps nothing', () => {
  const one = imapWireText(parseStructure(message('x')));
  const size = one.envelope.length + one.bodyStructure.length + 64;
  const cache = new WireCache(size * 3);
  for (let id = 1; id <= 5; id++) cache.set(id, one);
  assert.equal(cache.size, 3);
  assert.equal(cache.get(1), undefined);
  assert.equal(cache.get(2), undefined);
  assert.equal(cache.get(5), one);
  // Setting an id it has changes nothing (a message never changes).
  cache.set(5, imapWireText(parseStructure(message('y'))));
  assert.equal(cache.get(5), one);
  const off = new WireCache(0);
  off.set(1, one);
  assert.equal(off.get(1), undefined);
});
