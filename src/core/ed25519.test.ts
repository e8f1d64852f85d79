import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ed25519Implementation, signEd25519, verifyEd25519, verifyWithNode } from './ed25519.ts';
import { keyRecordValue, parseKeyRecord } from './twm-key-record.ts';

const here = dirname(fileURLToPath(import.meta.url));
/** The group order L of Ed25519, little-endian, as S is encoded. */
const L = Buffer.from('edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010', 'hex');

test('libsodium is what this installation uses (sodium-native is an optional dependency and loads)', () => {
  assert.equal(ed25519Implementation(), 'libsodium');
});

test('signEd25519 makes the same octets as node:crypto (Ed25519 is deterministic)', () => {
  for (let i = 0; i < 20; i++) {
    const { privateKey } = generateKeyPairSync('ed25519');
    const message = randomBytes(i * 37);
    assert.deepEqual(signEd25519(message, privateKey), sign(null, message, privateKey));
  }
});

/** S + L: the same point equation, a non-canonical encoding that RFC 8032 5.1.7 refuses. */
function withNonCanonicalS(signature: Buffer): Buffer {
  const out = Buffer.from(signature);
  let carry = 0;
  for (let i = 0; i < 32; i++) {
    const sum = out[32 + i]! + L[i]! + carry;
    out[32 + i] = sum & 0xff;
    carry = sum >> 8;
  }
  return out;
}

test('both verifiers agree on what an honest signer makes and on every altered part of it', () => {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const other = generateKeyPairSync('ed25519').publicKey;
  const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey;
  const message = Buffer.from('"@method": POST\n"@signature-params": ("@method");created=1');
  const signature = sign(null, message, privateKey);
  const flip = (buf: Buffer, at: number) => {
    const out = Buffer.from(buf);
    out[at] = out[at]! ^ 1;
    return out;
  };
  const cases: Array<{ name: string; message: Buffer; signature: Buffer; key: typeof publicKey; valid: boolean }> = [
    { name: 'the signature', message, signature, key: publicKey, valid: true },
    { name: 'an empty message', message: Buffer.alloc(0), signature: sign(null, Buffer.alloc(0), privateKey), key: publicKey, valid: true },
    { name: 'one bit of the message changed', message: flip(message, 3), signature, key: publicKey, valid: false },
    { name: 'one bit of R changed', message, signature: flip(signature, 0), key: publicKey, valid: false },
    { name: 'one bit of S changed', message, signature: flip(signature, 40), key: publicKey, valid: false },
    { name: 'S + L (non-canonical)', message, signature: withNonCanonicalS(signature), key: publicKey, valid: false },
    { name: 'another key', message, signature, key: other, valid: false },
    { name: 'a signature of 63 octets', message, signature: signature.subarray(0, 63), key: publicKey, valid: false },
    { name: 'an RSA key', message, signature, key: rsa, valid: false },
  ];
  for (const c of cases) {
    assert.equal(verifyEd25519(c.message, c.signature, c.key), c.valid, `verifyEd25519: ${c.name}`);
    assert.equal(verifyWithNode(c.message, c.signature, c.key), c.valid, `node:crypto: ${c.name}`);
  }
});

test('a key of small order: OpenSSL accepts a forgery for any message, libsodium refuses it', () => {
  // The identity point as the public key, and R = identity, S = 0: [0]B = R + [k]A for every k.
  const identity = Buffer.alloc(32);
  identity[0] = 1;
  // Published as a domain would publish it, and parsed as the key lookup parses it.
  const key = parseKeyRecord([[keyRecordValue(identity)]]);
  assert.ok(key, 'the record parses');
  const forged = Buffer.concat([identity, Buffer.alloc(32)]);
  const message = Buffer.from('anything at all');
  assert.equal(verifyWithNode(message, forged, key), true, 'OpenSSL 3.0 accepts it (why libsodium is preferred beyond speed)');
  assert.equal(verifyEd25519(message, forged, key), false);
});

test('without sodium-native the module falls back to node:crypto and still signs and verifies', () => {
  // A preload that makes `sodium-native` unresolvable, as on a platform without its prebuilt binaries.
  const preload = join(here, '../../test/helpers/hide-sodium.cjs');
  const script = [
    "const { generateKeyPairSync, sign } = await import('node:crypto');",
    `const e = await import(${JSON.stringify(join(here, 'ed25519.ts'))});`,
    "const { privateKey, publicKey } = generateKeyPairSync('ed25519');",
    "const m = Buffer.from('fallback');",
    'const s = e.signEd25519(m, privateKey);',
    'console.log(JSON.stringify({ impl: e.ed25519Implementation(), same: s.equals(sign(null, m, privateKey)), ok: e.verifyEd25519(m, s, publicKey), bad: e.verifyEd25519(Buffer.from("other"), s, publicKey) }));',
  ].join('\n');
  const out = execFileSync(process.execPath, ['--require', preload, '--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8' });
  assert.deepEqual(JSON.parse(out.trim().split('\n').at(-1)!), { impl: 'node:crypto', same: true, ok: true, bad: false });
});
