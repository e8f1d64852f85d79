/**
 * The signer's key from DNS with DNSSEC (docs/protocol.md 3.4, 3.6), used
 * by the inbox when `[twm] dnssec` is `prefer` or `require`.
 *
 * - SERVFAIL (bogus, stripped) or no answer: `temporarily-unavailable`, as
 *   any failed key lookup; the sender retries. Never "no key".
 * - A validated answer (AD): its key, as with `off`.
 * - An unvalidated answer (unsigned zone): the signer domain's policy may
 *   pin keys. `enforce` with pins: only a pinned key counts. With
 *   `require`, only a key pinned by an enforcing policy counts; anything
 *   else is no key (`unknown-key`). `testing` only reports a mismatch.
 *
 * Nothing is stored here: the key is used for this one verification, and
 * the policy cache (in memory) holds only what the signer domain published.
 */
import type { KeyObject } from 'node:crypto';
import { parseKeyRecord, rawPublicKey, splitKeyId } from '../../core/twm-key-record.ts';
import { keyPinned, type TwmPolicy } from '../../core/twm-policy.ts';
import { twmError } from '../../core/twm-types.ts';
import type { SecureResolver } from '../../dns/types.ts';

export interface SecureKeyLookupOptions {
  mode: 'prefer' | 'require';
  secure: SecureResolver;
  policyFor?: (domain: string) => Promise<TwmPolicy | null>;
  onProblem?: (domain: string, problem: string) => void;
}

export function createSecureKeyLookup(o: SecureKeyLookupOptions): (keyid: string) => Promise<KeyObject | null> {
  const unavailable = (detail: string, cause?: unknown) =>
    twmError('temporarily-unavailable', `key lookup failed (${detail}); try again later`, { retryAfter: 60, ...(cause ? { cause } : {}) });
  return async function lookupKey(keyid: string): Promise<KeyObject | null> {
    const parts = splitKeyId(keyid);
    if (!parts) return null;
    let answer: Awaited<ReturnType<SecureResolver['query']>>;
    try {
      answer = await o.secure.query(keyid, 'TXT');
    } catch (err) {
      throw unavailable('no answer', err);
    }
    if (answer.rcode === 'SERVFAIL') throw unavailable('SERVFAIL');
    const txt = answer.records.map((r) => (Array.isArray(r.data) ? r.data.map((b) => (Buffer.isBuffer(b) ? b.toString('utf8') : String(b))) : []));
    const key = txt.length > 0 ? parseKeyRecord(txt) : null;
    if (txt.length > 0 && !key && txt.some((t) => t.join('').startsWith('v=TWM1'))) o.onProblem?.(parts.domain, `malformed key record at ${keyid} (treated as absent)`);
    if (!key || answer.authenticated) return key;

    const policy = o.policyFor ? await o.policyFor(parts.domain) : null;
    const pinned = policy ? keyPinned(policy, parts.selector, rawPublicKey(key)) : 'no-pins';
    if (policy && pinned === 'not-pinned') o.onProblem?.(parts.domain, `policy (${policy.mode}): the key at ${keyid} is not pinned`);
    if (policy?.mode === 'enforce' && pinned !== 'no-pins') return pinned === 'pinned' ? key : null;
    // Section 3.4: with `require`, an unvalidated key is no key.
    return o.mode === 'require' ? null : key;
  };
}
