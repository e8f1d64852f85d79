import { test } from 'node:test';
import assert from 'node:assert/strict';
import { timePrefix } from './time-ordered-id.ts';
import { freshNonce, parseTwmSignature, signRequest } from './twm-signature.ts';
import { generateKeyPairSync } from 'node:crypto';

test('time prefixes: 8 base64url characters whose binary order is time order', () => {
  const times = [0, 1, 63, 64, 4095, 4096, Date.parse('2026-12-05T08:00:00.123Z'), Date.parse('2026-12-05T08:00:00.124Z'), Date.parse('2027-01-01T00:00:00Z'), 2 ** 48 - 1];
  const prefixes = times.map(timePrefix);
  for (const p of prefixes) assert.match(p, /^[A-Za-z0-9_-]{8}$/);
  assert.deepEqual([...prefixes].sort(), prefixes, 'sorted as strings = sorted as times');
  assert.equal(new Set(prefixes).size, prefixes.length);
  assert.equal(timePrefix(-5), timePrefix(0), 'clamped');
  assert.equal(timePrefix(2 ** 50), timePrefix(2 ** 48 - 1), 'clamped');
});

test('request nonces: the time, then 128 random bits, within the nonce syntax of 5.1', () => {
  const at = Date.parse('2026-12-05T08:00:00Z');
  const a = freshNonce(at);
  const b = freshNonce(at);
  assert.match(a, /^[A-Za-z0-9_-]{30}$/);
  assert.notEqual(a, b);
  assert.equal(a.slice(0, 8), b.slice(0, 8));
  assert.equal(Buffer.from(a.slice(8), 'base64url').length, 16);
  assert.ok(freshNonce(at + 1000) > freshNonce(at), 'later nonces sort after earlier ones');
  // A signature made with one parses (steps 4 and 5 check the nonce's syntax).
  const { privateKey } = generateKeyPairSync('ed25519');
  const headers = signRequest({
    method: 'POST',
    targetUri: 'https://twm.b.test/.well-known/twm/v1/notice',
    authority: 'twm.b.test',
    contentType: 'application/twm-notice+json',
    body: Buffer.from('{}'),
    keyid: 's1._twoway.a.test',
    privateKey,
    created: new Date(at),
  });
  assert.match(parseTwmSignature(headers['signature-input'], headers.signature).params.nonce, /^[A-Za-z0-9_-]{30}$/);
});
