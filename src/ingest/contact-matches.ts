/**
 * Turns a message's sender facts into the probes for the contact index and
 * the index's answer into the policy's `matches` input.
 */
import type { ContactEntry } from '../core/types.ts';
import type { PolicyInput } from '../core/policy.ts';
import { listIdUnder } from '../core/screener-keys.ts';

export interface SenderFacts {
  from: string | null;
  listId: string | null;
  /**
   * Also probe expected-sender entries (X-TWOWAY-EXPECT) for the From:
   * domain and its parents. Set only for a marked ownership confirmation
   * whose From: domain is authenticated (docs/protocol.md 9.3), so other
   * mail costs no extra lookups.
   */
  expect?: boolean;
}

export type Probe = { kind: ContactEntry['kind']; value: string };

/** The address, its domain and every parent domain (X-TWOWAY-DOMAIN covers subdomains), and the list id. */
export function probesFor(facts: SenderFacts): Probe[] {
  const probes: Probe[] = [];
  if (facts.from) {
    probes.push({ kind: 'address', value: facts.from });
    const labels = facts.from.slice(facts.from.lastIndexOf('@') + 1).split('.');
    // Stop before the bare TLD: a card cannot allow a whole top-level domain by accident.
    for (let i = 0; i < labels.length - 1; i++) {
      const domain = labels.slice(i).join('.');
      probes.push({ kind: 'domain', value: domain });
      if (facts.expect) probes.push({ kind: 'expect', value: domain });
    }
  }
  if (facts.listId) probes.push({ kind: 'list', value: facts.listId });
  return probes;
}

/**
 * Precedence: for each kind, a block entry beats an allow entry for the same
 * value; among domains the most specific (longest) matching domain decides.
 * One pass, no closures: every decision (each stranger's notice) runs this.
 */
export function matchesFrom(found: ContactEntry[]): PolicyInput['matches'] {
  let address: 'allow' | 'block' | null = null;
  let list: 'allow' | 'block' | null = null;
  let domain: 'allow' | 'block' | null = null;
  let longest = 0;
  for (const e of found) {
    if (e.kind === 'address') address = address === 'block' || e.action === 'block' ? 'block' : 'allow';
    else if (e.kind === 'list') list = list === 'block' || e.action === 'block' ? 'block' : 'allow';
    else if (e.kind === 'domain') {
      // A longer (more specific) domain starts afresh; the same length joins in.
      if (e.value.length > longest) {
        longest = e.value.length;
        domain = e.action === 'block' ? 'block' : 'allow';
      } else if (e.value.length === longest) domain = domain === 'block' || e.action === 'block' ? 'block' : 'allow';
    }
  }
  return { address, domain, list };
}

/** A List-Id is authenticated when it is, or is under, a domain that authenticated the message. */
export function listAuthenticated(listId: string | null, authenticatedDomains: string[]): boolean {
  if (!listId) return false;
  for (const d of authenticatedDomains) if (listIdUnder(listId, d)) return true;
  return false;
}
