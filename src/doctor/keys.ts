/**
 * The public halves of the private keys on disk, as DNS publishes them:
 * RSA DKIM keys as base64 SubjectPublicKeyInfo (RFC 6376), Ed25519 DKIM and
 * TWM keys as the raw 32 octets (RFC 8463, docs/protocol.md 3.2). Derived
 * from the private key itself, so a DNS record that matches proves the key
 * on disk is the one the world verifies with.
 */
import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';

const ED25519_SPKI_PREFIX_LENGTH = 12;

export function publishedKeyOf(privateKey: string | KeyObject): string {
  const key = typeof privateKey === 'string' ? createPrivateKey(privateKey) : privateKey;
  const spki = createPublicKey(key).export({ type: 'spki', format: 'der' });
  if (key.asymmetricKeyType === 'ed25519') return spki.subarray(ED25519_SPKI_PREFIX_LENGTH).toString('base64');
  return spki.toString('base64');
}

/** The `p=` tag of a DKIM or TWM key record, without folding whitespace; undefined when absent. */
export function pTag(record: string): string | undefined {
  const m = /(?:^|;)\s*p\s*=\s*([^;]*)/.exec(record);
  return m ? m[1]!.replace(/\s+/g, '') : undefined;
}
