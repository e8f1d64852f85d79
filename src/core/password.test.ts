import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hashPassword, MAX_PASSWORD_BYTES, verifyPassword } from './password.ts';

test('hash format and round trip', async () => {
  const hash = await hashPassword('correct horse battery staple');
  const parts = hash.split('$');
  assert.equal(parts.length, 6);
  assert.deepEqual(parts.slice(0, 4), ['scrypt', '16384', '8', '1']);
  assert.equal(Buffer.from(parts[4] ?? '', 'base64').length, 16);
  assert.equal(Buffer.from(parts[5] ?? '', 'base64').length, 32);
  assert.equal(await verifyPassword('correct horse battery staple', hash), true);
  assert.equal(await verifyPassword('correct horse battery stapl', hash), false);
  assert.equal(await verifyPassword('Correct horse battery staple', hash), false);
});

test('salts differ, so equal passwords give different hashes', async () => {
  const [a, b] = await Promise.all([hashPassword('same'), hashPassword('same')]);
  assert.notEqual(a, b);
  assert.equal(await verifyPassword('same', a), true);
  assert.equal(await verifyPassword('same', b), true);
});

test('passwords are compared after NFC normalisation', async () => {
  const composed = 'p\u00e4ssword';
  const decomposed = 'pa\u0308ssword';
  const hash = await hashPassword(composed);
  assert.equal(await verifyPassword(decomposed, hash), true);
});

test('empty and over-long passwords are rejected with an Error saying so', async () => {
  await assert.rejects(hashPassword(''), /Password must not be empty/);
  await assert.rejects(hashPassword('x'.repeat(MAX_PASSWORD_BYTES + 1)), /longer than 1024 bytes/);
  // The limit is in UTF-8 bytes, not characters: 342 three-byte characters are 1026 bytes.
  await assert.rejects(hashPassword('€'.repeat(342)), /longer than 1024 bytes/);
  assert.match(await hashPassword('x'.repeat(MAX_PASSWORD_BYTES)), /^scrypt\$/);

  const hash = await hashPassword('something');
  await assert.rejects(verifyPassword('', hash), /must not be empty/);
  await assert.rejects(verifyPassword('x'.repeat(2000), hash), /longer than 1024 bytes/);
});

test('hashes with other valid parameters still verify', async () => {
  // Produced with N=1024, r=8, p=1 (what a cheaper earlier setting would have stored).
  const { scryptSync } = await import('node:crypto');
  const salt = Buffer.alloc(16, 7);
  const key = scryptSync('legacy', salt, 32, { N: 1024, r: 8, p: 1 });
  const stored = `scrypt$1024$8$1$${salt.toString('base64')}$${key.toString('base64')}`;
  assert.equal(await verifyPassword('legacy', stored), true);
  assert.equal(await verifyPassword('other', stored), false);
});

test('malformed or hostile stored hashes are rejected, not evaluated', async () => {
  const good = await hashPassword('pw');
  const [, , , , salt, key] = good.split('$');
  const bad = [
    '',
    'plain-text-password',
    `bcrypt$16384$8$1$${salt}$${key}`,
    `scrypt$16384$8$1$${salt}`,
    `scrypt$16385$8$1$${salt}$${key}`, // N not a power of two
    `scrypt$1$8$1$${salt}$${key}`,
    `scrypt$${1 << 22}$8$1$${salt}$${key}`, // too costly
    `scrypt$1048576$32$1$${salt}$${key}`, // too much memory
    `scrypt$16384$0$1$${salt}$${key}`,
    `scrypt$16384$8$99$${salt}$${key}`,
    `scrypt$16384$8$1$not base64!$${key}`,
    `scrypt$16384$8$1$${salt}$AAAA`, // key too short to mean anything
    `${good}$extra`,
  ];
  for (const stored of bad) {
    await assert.rejects(verifyPassword('pw', stored), /malformed or uses unsupported parameters/, stored);
  }
});
