import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkHeaderLimits, DEFAULT_HEADER_LIMITS, HeaderLimitChecker, type HeaderLimits } from './header-limits.ts';

const limits: HeaderLimits = { maxBytes: 1024, maxLinesPerField: 3, maxFields: 5, maxDkimSignatures: 2 };

function verdict(raw: string, l: HeaderLimits = limits, chunk = 0): string | null {
  const checker = new HeaderLimitChecker(l);
  const buf = Buffer.from(raw, 'latin1');
  if (chunk <= 0) checker.push(buf);
  else for (let i = 0; i < buf.length; i += chunk) checker.push(buf.subarray(i, i + chunk));
  const e = checker.finish();
  return e ? `${e.code} ${e.enhanced}` : null;
}

test('a header within the limits passes, whatever the chunking, and the body is not looked at', () => {
  const body = ' b\r\n'.repeat(10_000) + 'x'.repeat(5000);
  const raw = `From: a@b.test\r\nSubject: hi\r\n there\r\n\r\n${body}`;
  for (const chunk of [0, 1, 2, 3, 7, 64]) assert.equal(verdict(raw, limits, chunk), null, `chunk ${chunk}`);
  assert.equal(verdict(raw.replace(/\r\n/g, '\n')), null);
});

test('too many header bytes: 552 5.3.4, even without an end of header', () => {
  assert.equal(verdict(`X: ${'a'.repeat(2000)}\r\n\r\n`), '552 5.3.4');
  assert.equal(verdict('X: a\r\n'.repeat(1) + 'Y'.repeat(5000)), '552 5.3.4');
  assert.equal(verdict(`X: ${'a'.repeat(1000)}\r\n\r\n`), null);
});

test('too many lines in one field, too many fields, too many DKIM signatures: 554 5.6.0', () => {
  assert.equal(verdict('X: a\r\n b\r\n b\r\n\r\n'), null);
  assert.equal(verdict('X: a\r\n b\r\n b\r\n\tb\r\n\r\n'), '554 5.6.0');
  assert.equal(verdict('A: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\n\r\n'), null);
  assert.equal(verdict('A: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\nF: 6\r\n\r\n'), '554 5.6.0');
  assert.equal(verdict('DKIM-Signature: a\r\ndkim-signature : b\r\n\r\n'), null);
  assert.equal(verdict('DKIM-Signature: a\r\ndkim-signature : b\r\n DKIM-Signature\t: c\r\n\r\n'), null, 'a continuation is not a field');
  const three = 'DKIM-Signature: a\r\ndkim-signature : b\r\nX: y\r\nDKIM-SIGNATURE  \t: c\r\n\r\n';
  for (const chunk of [0, 1, 5]) assert.equal(verdict(three, limits, chunk), '554 5.6.0', `chunk ${chunk}`);
});

test('the attack of issue 17 is refused by the defaults, and the checker is linear', () => {
  const attack = Buffer.from(`From: e@evil.test\r\nX: a\r\n${' b\r\n'.repeat(100_000)}\r\nbody\r\n`);
  assert.throws(() => checkHeaderLimits(attack, DEFAULT_HEADER_LIMITS), (e: Error & { code?: number }) => e.code === 554);
  const huge = Buffer.alloc(20 * 1024 * 1024, 'a');
  const t0 = performance.now();
  assert.throws(() => checkHeaderLimits(huge, DEFAULT_HEADER_LIMITS), (e: Error & { code?: number }) => e.code === 552);
  assert.ok(performance.now() - t0 < 50, 'stops at the byte limit');
});
