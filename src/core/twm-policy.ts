/**
 * The TWM policy for domains that cannot sign their zone (docs/protocol.md
 * 3.6), on RFC 8461's (MTA-STS) model: a TXT record `_twoway-policy.<domain>`
 * announcing a policy id, and the policy file at
 * `https://twoway-policy.<domain>/.well-known/twoway-policy.txt`, fetched
 * with WebPKI and cached for `max_age`.
 *
 * Pure parsers and the matching rules; fetching and caching live in
 * src/delivery/twm-policy-source.ts. Strict: anything outside the grammar
 * makes the record or file invalid (treated as absent), except unknown
 * fields of the file, which are ignored so the format can grow.
 */
import { createHash } from 'node:crypto';

export type PolicyMode = 'enforce' | 'testing' | 'none';

export interface TwmPolicy {
  mode: PolicyMode;
  /** Lower-case host patterns: `twm.example.com` or `*.example.com` (one leftmost label). */
  targets: string[];
  /** Key pins: selector -> base64 SHA-256 digests of the raw Ed25519 public key. */
  keys: Map<string, string[]>;
  /** Seconds, 0 to 31557600. */
  maxAge: number;
}

export const POLICY_PATH = '/.well-known/twoway-policy.txt';
export const MAX_POLICY_BYTES = 65_536;
const MAX_AGE_LIMIT = 31_557_600;
const LABEL = '[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?';
const HOST = new RegExp(`^(?:\\*\\.)?${LABEL}(?:\\.${LABEL})+$`);
const SELECTOR = new RegExp(`^${LABEL}$`);
const PIN = /^sha256\/([A-Za-z0-9+/]{43}=)$/;

/**
 * The policy TXT answer (node:dns shape): exactly one record starting with
 * `v=TWMPOL1`, tags `v` then `id` (1-32 alphanumerics), nothing else but
 * optional blanks around `;`. Returns the id, or null (treated as absent).
 */
export function parsePolicyTxt(txt: string[][]): string | null {
  const candidates = txt.map((parts) => parts.join('')).filter((t) => /^v=TWMPOL1(?:[ \t]*;|$)/.test(t));
  if (candidates.length !== 1) return null;
  const m = /^v=TWMPOL1[ \t]*;[ \t]*id=([A-Za-z0-9]{1,32})[ \t]*;?[ \t]*$/.exec(candidates[0] ?? '');
  return m?.[1] ?? null;
}

export type PolicyParse = { ok: true; policy: TwmPolicy } | { ok: false; problem: string };

/** The policy file: `key: value` lines (LF or CRLF), RFC 8461 3.2's shape with TWM's fields. */
export function parsePolicyFile(text: string): PolicyParse {
  if (Buffer.byteLength(text) > MAX_POLICY_BYTES) return { ok: false, problem: 'the policy is larger than 64 KiB' };
  const lines = text.split(/\r?\n/);
  if (lines[lines.length - 1] === '') lines.pop();
  let version: string | undefined;
  let mode: PolicyMode | undefined;
  let maxAge: number | undefined;
  const targets: string[] = [];
  const keys = new Map<string, string[]>();
  for (const [i, line] of lines.entries()) {
    const m = /^([A-Za-z0-9_]+):[ \t]*(.*?)[ \t]*$/.exec(line);
    if (!m) return { ok: false, problem: `line ${i + 1} is not "field: value"` };
    const [, field = '', value = ''] = m;
    const once = (seen: unknown) => (seen === undefined ? null : { ok: false as const, problem: `"${field}" appears twice` });
    switch (field) {
      case 'version':
        if (once(version)) return once(version)!;
        if (i !== 0) return { ok: false, problem: '"version" must be the first line' };
        version = value;
        break;
      case 'mode':
        if (once(mode)) return once(mode)!;
        if (value !== 'enforce' && value !== 'testing' && value !== 'none') return { ok: false, problem: `unknown mode "${value}"` };
        mode = value;
        break;
      case 'max_age':
        if (once(maxAge)) return once(maxAge)!;
        if (!/^[0-9]{1,10}$/.test(value) || Number(value) > MAX_AGE_LIMIT) return { ok: false, problem: `bad max_age "${value}"` };
        maxAge = Number(value);
        break;
      case 'target': {
        const host = value.toLowerCase().replace(/\.$/, '');
        if (!HOST.test(host) || host.length > 253) return { ok: false, problem: `bad target "${value}"` };
        targets.push(host);
        break;
      }
      case 'key': {
        const k = /^(\S+)[ \t]+(\S+)$/.exec(value);
        const pin = k ? PIN.exec(k[2] ?? '') : null;
        if (!k || !SELECTOR.test(k[1] ?? '') || !pin) return { ok: false, problem: `bad key pin "${value}"` };
        keys.set(k[1] ?? '', [...(keys.get(k[1] ?? '') ?? []), pin[1] ?? '']);
        break;
      }
      default:
        // Unknown fields are ignored (extension point, as in RFC 8461 3.2).
        break;
    }
  }
  if (version !== 'TWMPOLv1') return { ok: false, problem: 'the first line must be "version: TWMPOLv1"' };
  if (mode === undefined) return { ok: false, problem: 'no "mode"' };
  if (maxAge === undefined) return { ok: false, problem: 'no "max_age"' };
  if (mode !== 'none' && targets.length === 0) return { ok: false, problem: 'no "target"' };
  return { ok: true, policy: { mode, targets, keys, maxAge } };
}

/** A target matches a pattern exactly, or a `*.` pattern by exactly one leftmost label (RFC 8461 4.1). */
export function targetAllowed(policy: TwmPolicy, target: string): boolean {
  const host = target.toLowerCase().replace(/\.$/, '');
  return policy.targets.some((p) => {
    if (!p.startsWith('*.')) return p === host;
    const dot = host.indexOf('.');
    return dot > 0 && host.slice(dot + 1) === p.slice(2);
  });
}

/** The pin value of a raw 32-octet Ed25519 public key: `sha256/<base64 of its SHA-256>`. */
export function keyPin(publicKeyRaw: Buffer): string {
  return `sha256/${createHash('sha256').update(publicKeyRaw).digest('base64')}`;
}

/** Whether the policy pins keys for `selector` at all, and whether `publicKeyRaw` is one of them. */
export function keyPinned(policy: TwmPolicy, selector: string, publicKeyRaw: Buffer): 'pinned' | 'not-pinned' | 'no-pins' {
  if (policy.keys.size === 0) return 'no-pins';
  const digest = createHash('sha256').update(publicKeyRaw).digest('base64');
  return (policy.keys.get(selector) ?? []).includes(digest) ? 'pinned' : 'not-pinned';
}
