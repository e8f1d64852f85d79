/**
 * TWM discovery with DNSSEC and policies (docs/protocol.md 3.4-3.6), used
 * by the client when `[twm] dnssec` is `prefer` or `require`.
 *
 * The decision, per SRV answer from a validating resolver:
 * - SERVFAIL (bogus, stripped signatures, a spoofed denial in a signed
 *   zone) or no answer at all: temporary, the message defers. Never SMTP.
 * - Validated (AD): the targets, or legacy on a validated denial.
 * - Not validated (unsigned zone): the domain's policy (3.6) decides. An
 *   `enforce` policy keeps only the targets it lists and turns a missing
 *   SRV into a deferral (no downgrade); `testing` only reports. Without an
 *   enforcing policy, `require` treats the unvalidated answer as no answer
 *   (legacy, SMTP), `prefer` uses it as `off` would.
 */
import type { SecureResolver } from '../dns/types.ts';
import { usableTlsa, type TlsaRecord } from '../core/dane.ts';
import { targetAllowed } from '../core/twm-policy.ts';
import { TwmUnreachableError, type DnssecMode, type TwmDiscovery } from './twm-client-types.ts';
import type { PolicySource } from './twm-policy-source.ts';

type Target = Extract<TwmDiscovery, { kind: 'twm' }>['targets'][number];

export interface SecureDiscoveryOptions {
  mode: Exclude<DnssecMode, 'off'>;
  secure: SecureResolver;
  policies: PolicySource | undefined;
  onProblem: ((domain: string, problem: string) => void) | undefined;
}

export async function discoverSecure(name: string, o: SecureDiscoveryOptions): Promise<TwmDiscovery> {
  const owner = `_twoway._tcp.${name}`;
  let answer: Awaited<ReturnType<SecureResolver['query']>>;
  try {
    answer = await o.secure.query(owner, 'SRV');
  } catch (err) {
    throw new TwmUnreachableError(`${name}: SRV lookup of ${owner} failed (${err instanceof Error ? err.message : String(err)}); retry later`);
  }
  if (answer.rcode === 'SERVFAIL') {
    throw new TwmUnreachableError(`${name}: SRV lookup of ${owner} failed (SERVFAIL: a bogus answer or no answer); retry later, no SMTP downgrade`, undefined, false, 'dnssec-invalid');
  }
  const targets = toTargets(answer.records.map((r) => r.data), name, o.onProblem);
  if (answer.authenticated) return targets.length > 0 ? { kind: 'twm', targets, validated: true } : { kind: 'legacy' };

  const policy = o.policies ? await o.policies.get(name) : null;
  if (policy) {
    const allowed = targets.filter((t) => targetAllowed(policy, t.target));
    if (targets.length === 0) {
      if (policy.mode === 'enforce') throw new TwmUnreachableError(`${name}: its TWM policy is "enforce" but ${owner} has no targets; retry later, no SMTP downgrade`, undefined, false, 'twm-policy-invalid');
      o.onProblem?.(name, `policy (testing): ${owner} has no targets`);
    } else if (allowed.length < targets.length) {
      const outside = targets.filter((t) => !allowed.includes(t)).map((t) => t.target);
      o.onProblem?.(name, `policy (${policy.mode}): SRV targets not in the policy: ${outside.join(', ')}`);
    }
    if (policy.mode === 'enforce') {
      if (allowed.length === 0) throw new TwmUnreachableError(`${name}: no SRV target is allowed by its TWM policy (enforce); retry later`, undefined, false, 'twm-policy-invalid');
      return { kind: 'twm', targets: allowed, validated: false };
    }
  }
  // Section 3.4: with `require`, an answer without AD is no answer.
  if (o.mode === 'require') return { kind: 'legacy' };
  return targets.length > 0 ? { kind: 'twm', targets, validated: false } : { kind: 'legacy' };
}

/** dns-packet SRV data to targets; `.` (no service) and malformed entries dropped. */
function toTargets(data: unknown[], domain: string, onProblem: SecureDiscoveryOptions['onProblem']): Target[] {
  const targets: Target[] = [];
  for (const d of data) {
    const v = d as Partial<Record<'priority' | 'weight' | 'port' | 'target', unknown>> | null;
    const { priority, weight, port, target } = v ?? {};
    if (typeof priority !== 'number' || typeof weight !== 'number' || typeof port !== 'number' || typeof target !== 'string') {
      onProblem?.(domain, 'malformed SRV record (ignored)');
      continue;
    }
    const host = target.toLowerCase().replace(/\.$/, '');
    if (host === '' || port <= 0 || port > 65535) continue;
    targets.push({ target: host, port, priority, weight });
  }
  return targets.sort((a, b) => a.priority - b.priority || b.weight - a.weight);
}

export type TlsaLookup = { kind: 'dane'; records: TlsaRecord[] } | { kind: 'webpki' } | { kind: 'failed'; problem: string };

/**
 * Section 3.5: the TLSA records of a target under a validated SRV answer.
 * Validated and usable: DANE. Validated denial, unvalidated, or none usable:
 * WebPKI as usual. SERVFAIL (bogus) or no answer: the target is not used
 * (RFC 7672 2.2.1: a failed TLSA lookup must not turn into WebPKI).
 */
export async function tlsaFor(secure: SecureResolver, target: string, port: number, onProblem: SecureDiscoveryOptions['onProblem']): Promise<TlsaLookup> {
  const owner = `_${port}._tcp.${target}`;
  let answer: Awaited<ReturnType<SecureResolver['query']>>;
  try {
    answer = await secure.query(owner, 'TLSA');
  } catch (err) {
    return { kind: 'failed', problem: `TLSA lookup of ${owner} failed (${err instanceof Error ? err.message : String(err)})` };
  }
  if (answer.rcode === 'SERVFAIL') return { kind: 'failed', problem: `TLSA lookup of ${owner} failed (SERVFAIL)` };
  if (!answer.authenticated || answer.records.length === 0) return { kind: 'webpki' };
  const records = usableTlsa(answer.records.map((r) => r.data));
  if (records.length === 0) {
    onProblem?.(target, `TLSA records at ${owner} are malformed or not usable (only DANE-TA(2) and DANE-EE(3) are); WebPKI applies`);
    return { kind: 'webpki' };
  }
  return { kind: 'dane', records };
}
