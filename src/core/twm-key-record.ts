/**
 * TWM/1 signing keys in DNS (docs/protocol.md section 3.2): the TXT record
 * `v=TWM1; k=ed25519; p=<base64>` at `<selector>._twoway.<domain>`, and the
 * keyid that names it (section 5.1). Pure: the caller does the DNS query and
 * hands over the TXT answer as node:dns returns it (one array of
 * character-strings per record).
 */
import { createPublicKey, type KeyObject } from 'node:crypto';

const SELECTOR = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
const LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
const KEYID_INFIX = '._twoway.';

/**
 * Splits a keyid at the first `._twoway.` into selector and signer domain,
 * or null when either part is not valid: keyids are lower-case (5.1), the
 * selector one label, the domain lower-case A-labels with at least two
 * labels (as in the mailbox pattern of section 6) and no trailing dot.
 */
export function splitKeyId(keyid: string): { selector: string; domain: string } | null {
  const at = keyid.indexOf(KEYID_INFIX);
  if (at <= 0) return null;
  const selector = keyid.slice(0, at);
  const domain = keyid.slice(at + KEYID_INFIX.length);
  if (!SELECTOR.test(selector) || !isDomainName(domain)) return null;
  return { selector, domain };
}

function isDomainName(domain: string): boolean {
  if (domain.length > 253) return false;
  const labels = domain.split('.');
  return labels.length >= 2 && labels.every((l) => LABEL.test(l));
}

/**
 * The TXT value publishing a raw 32-byte Ed25519 public key (what `twoway dns` prints); with
 * `testing`, the tag `t=y` of the testing mode (docs/protocol.md 6.6).
 */
export function keyRecordValue(publicKeyRaw: Buffer, options: { testing?: boolean } = {}): string {
  if (publicKeyRaw.length !== 32) throw new RangeError(`an Ed25519 public key has 32 octets, not ${publicKeyRaw.length}`);
  return `v=TWM1; k=ed25519; ${options.testing ? 't=y; ' : ''}p=${publicKeyRaw.toString('base64')}`;
}

/** The key record's `t=y` (testing mode, 6.6): a statement of the sender, never needed to verify. */
export function keyRecordTesting(txt: string[][]): boolean {
  const candidates = txt.map((strings) => strings.join('')).filter((text) => /^[ \t\r\n]*v=TWM1[ \t\r\n]*(;|$)/.test(text));
  if (candidates.length !== 1) return false;
  return parseTagList(candidates[0] ?? '')?.get('t') === 'y';
}

/** The raw 32 octets of an Ed25519 public KeyObject (the `p=` value, decoded). */
export function rawPublicKey(key: KeyObject): Buffer {
  const jwk = key.export({ format: 'jwk' });
  if (jwk.crv !== 'Ed25519' || typeof jwk.x !== 'string') throw new TypeError('not an Ed25519 key');
  return Buffer.from(jwk.x, 'base64url');
}

// The ABNF of section 3.2. FWS as in RFC 5322: optional folding, then blanks.
const FWS = '(?:(?:[ \\t]*\\r\\n)?[ \\t]+)?';
const TAG_SPEC = new RegExp(`^${FWS}([A-Za-z][A-Za-z0-9_]*)${FWS}=${FWS}((?:[\\x21-\\x3a\\x3c-\\x7e]+(?:[ \\t]+[\\x21-\\x3a\\x3c-\\x7e]+)*)?)${FWS}$`);
const BLANK = /^[ \t\r\n]*$/;
/** RFC 4648 section 4 with padding, nothing else. */
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Parses a tag list; null on a syntax error or a repeated tag name (rule 2). */
export function parseTagList(text: string): Map<string, string> | null {
  const specs = text.split(';');
  // `[";"]` at the end: the last segment may be empty (blanks tolerated, as DKIM verifiers do).
  if (specs.length > 1 && BLANK.test(specs[specs.length - 1] ?? '')) specs.pop();
  const tags = new Map<string, string>();
  for (const spec of specs) {
    const m = TAG_SPEC.exec(spec);
    if (!m) return null;
    const [, name = '', value = ''] = m;
    if (tags.has(name)) return null;
    tags.set(name, value);
  }
  return tags;
}

/**
 * The usable Ed25519 key in a TXT answer, or null (verification then fails
 * with `unknown-key`). Applies rules 1-3 of section 3.2 in order.
 */
export function parseKeyRecord(txt: ReadonlyArray<readonly string[]>): KeyObject | null {
  // Rule 1: only records whose first tag is exactly `v=TWM1` count (the token, not a prefix: a
  // later `v=TWM10` or `v=TWM2` record beside it is another version's and ignored), and exactly one must.
  const candidates = txt.map((strings) => strings.join('')).filter((text) => /^[ \t\r\n]*v=TWM1[ \t\r\n]*(;|$)/.test(text));
  if (candidates.length !== 1) return null;
  const tags = parseTagList(candidates[0] ?? '');
  if (!tags) return null;
  // `v` is the first tag, exactly TWM1 (Map keeps insertion order).
  const [first] = tags;
  if (first?.[0] !== 'v' || first[1] !== 'TWM1') return null;
  const k = tags.get('k');
  const p = tags.get('p');
  if (k !== 'ed25519' || p === undefined) return null;
  const b64 = p.replace(/[ \t\r\n]+/g, '');
  if (b64 === '' || !BASE64.test(b64)) return null; // empty: revoked
  const raw = Buffer.from(b64, 'base64');
  if (raw.length !== 32) return null;
  try {
    return createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: raw.toString('base64url') }, format: 'jwk' });
  } catch {
    return null;
  }
}
