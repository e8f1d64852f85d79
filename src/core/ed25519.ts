/**
 * Ed25519 signing and verification for TWM/1 requests (docs/protocol.md 5):
 * libsodium (the optional `sodium-native` package, which ships prebuilt
 * binaries) when it loads, else node:crypto.
 *
 * Why two: Node 20's OpenSSL 3.0 verifies with the reference field arithmetic
 * of 32-bit limbs, and every TWM request is verified once (a notice at the
 * recipient, a fetch and a receipt at the sender). On the 2-core machines of
 * bench/results.md libsodium verified in 50 µs against OpenSSL's 106, and
 * signed in 18 µs against 36: verification alone was a quarter of a
 * stranger's notice. The package is optional so that a platform without its
 * prebuilt binaries still installs and runs, on node:crypto.
 *
 * The two agree on every signature an honest signer makes (ed25519.test.ts
 * checks them against each other). libsodium is the stricter: it also refuses
 * a public key or an `R` of small order, which OpenSSL accepts (with the
 * identity as its key, OpenSSL verifies a signature of all zeros for any
 * message). Only the domain itself can publish such a key, and it can sign
 * anything anyway: refusing it costs an honest signer nothing.
 */
import { createRequire } from 'node:module';
import { sign as nodeSign, verify as nodeVerify, type KeyObject } from 'node:crypto';
import { rawPublicKey } from './twm-key-record.ts';

/** The two functions of sodium-native used here (it ships no types). */
interface Sodium {
  crypto_sign_detached(signature: Buffer, message: Buffer, secretKey: Buffer): void;
  crypto_sign_verify_detached(signature: Buffer, message: Buffer, publicKey: Buffer): boolean;
}

export type Ed25519Implementation = 'libsodium' | 'node:crypto';

function loadSodium(): Sodium | null {
  try {
    // createRequire: the package is CommonJS and optional; a static import would fail where it is absent.
    return createRequire(import.meta.url)('sodium-native') as Sodium;
  } catch {
    return null;
  }
}

/** Loaded on first use: requiring it costs about 15 ms, which a CLI command that never signs should not pay. */
let loaded: Sodium | null | undefined;
function lib(): Sodium | null {
  if (loaded === undefined) loaded = loadSodium();
  return loaded;
}

/** Which implementation this process signs and verifies with (logged as the server starts). */
export function ed25519Implementation(): Ed25519Implementation {
  return lib() ? 'libsodium' : 'node:crypto';
}

/** Raw keys by KeyObject: libsodium takes octets, and the same few keys sign or verify every request. */
const rawPublic = new WeakMap<KeyObject, Buffer | null>();
const rawSecret = new WeakMap<KeyObject, Buffer | null>();

/** The 32 octets of an Ed25519 public key, or null for a key of another type. */
function publicOctets(key: KeyObject): Buffer | null {
  let raw = rawPublic.get(key);
  if (raw === undefined) {
    raw = key.asymmetricKeyType === 'ed25519' ? rawPublicKey(key) : null;
    rawPublic.set(key, raw);
  }
  return raw;
}

/** libsodium's 64-octet secret key (seed, then public key) of an Ed25519 private key, or null. */
function secretOctets(key: KeyObject): Buffer | null {
  let raw = rawSecret.get(key);
  if (raw === undefined) {
    const seed = key.asymmetricKeyType === 'ed25519' ? key.export({ format: 'jwk' }).d : undefined;
    raw = typeof seed === 'string' ? Buffer.concat([Buffer.from(seed, 'base64url'), rawPublicKey(key)]) : null;
    rawSecret.set(key, raw);
  }
  return raw;
}

/** Signs `message` with an Ed25519 private key (64 octets; the same octets on both implementations). */
export function signEd25519(message: Buffer, privateKey: KeyObject): Buffer {
  const sodium = lib();
  const secret = sodium ? secretOctets(privateKey) : null;
  if (!sodium || !secret) return nodeSign(null, message, privateKey);
  const signature = Buffer.allocUnsafe(64);
  sodium.crypto_sign_detached(signature, message, secret);
  return signature;
}

/** Whether `signature` is `publicKey`'s Ed25519 signature of `message`; false for a key of another type. */
export function verifyEd25519(message: Buffer, signature: Buffer, publicKey: KeyObject): boolean {
  if (signature.length !== 64) return false;
  const sodium = lib();
  if (!sodium) return verifyWithNode(message, signature, publicKey);
  const raw = publicOctets(publicKey);
  return raw !== null && sodium.crypto_sign_verify_detached(signature, message, raw);
}

/** node:crypto's verification (the fallback; exported so that the tests compare the two). */
export function verifyWithNode(message: Buffer, signature: Buffer, publicKey: KeyObject): boolean {
  if (publicKey.asymmetricKeyType !== 'ed25519') return false;
  try {
    return nodeVerify(null, message, publicKey, signature);
  } catch {
    return false;
  }
}
