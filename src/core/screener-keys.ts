/**
 * Small pure helpers for the Screener: the keys contact requests are grouped
 * by (sender, List-Id) and a verdict's standing. The Screener service itself
 * is services/screener.ts.
 */
import type { Verdict } from './policy.ts';

/**
 * The address that identifies a sender for grouping contact requests: the
 * header From: address if there is one (it is what the user sees and what an
 * approval adds to the address book), else the envelope sender, else
 * `unknown`. An empty envelope sender (the null reverse-path `<>`) counts as
 * absent. The result is trimmed and lower-cased so one sender is one group.
 */
export function senderKey(from: string | null, envelope: string | null): string {
  for (const candidate of [from, envelope]) {
    const key = candidate?.trim().toLowerCase();
    if (key) return key;
  }
  return 'unknown';
}

/** RFC 5322 atext: what a List-Id (a dot-atom-text, RFC 2919) is made of. */
const ATEXT_ATOM = "[A-Za-z0-9!#$%&'*+\\-/=?^_`{|}~]+";
const LIST_ID = new RegExp(`^${ATEXT_ATOM}(?:\\.${ATEXT_ATOM})+$`);
/** RFC 2919 limits the list-id to 255 octets. */
const MAX_LIST_ID = 255;

/**
 * Extracts the list identifier from a List-Id header value (RFC 2919):
 * `Developers <dev.lists.example.org>` -> `dev.lists.example.org`. A bare
 * `dev.lists.example.org` or `<dev.lists.example.org>` is accepted too (the
 * vCard profile's X-TWOWAY-LIST uses this). Returns the lower-cased id, or
 * null when there is none or it is not a dot-atom with at least one dot.
 *
 * The last `<…>` pair is used, because the descriptive phrase before it may
 * itself contain angle brackets inside quotes. Folding whitespace is allowed
 * anywhere a header may be folded.
 */
export function normaliseListId(header: string): string | null {
  const unfolded = header.replace(/\r?\n(?=[ \t])/g, '').trim();
  const open = unfolded.lastIndexOf('<');
  let id: string;
  if (open >= 0) {
    const close = unfolded.indexOf('>', open);
    if (close < 0) return null;
    id = unfolded.slice(open + 1, close).trim();
  } else {
    id = unfolded;
  }
  if (id.length === 0 || id.length > MAX_LIST_ID || !LIST_ID.test(id)) return null;
  return id.toLowerCase();
}

/**
 * A List-Id is the domain's own when it is the domain or under it
 * (`dev.lists.example.org` under `example.org`): only then does that
 * domain's signature vouch for it (docs/protocol.md 7.6, 8.2).
 */
export function listIdUnder(listId: string, domain: string): boolean {
  const d = domain.toLowerCase();
  return listId === d || listId.endsWith('.' + d);
}

/**
 * Where a sender stands for a pending decision, read off a policy verdict:
 * `allowed` (an authenticated allow entry: release what is held, fetch what
 * is pending), `blocked` (a block entry: deny), else `undecided` (a stranger,
 * a forged or unauthenticated copy of an allowed address, or an expected
 * sender, which admits one message but never makes a contact). The mode
 * plays no part: an open mailbox's strangers reach the INBOX, yet they are
 * not allowed.
 */
export type Standing = 'allowed' | 'blocked' | 'undecided';

export function standingOf(verdict: Verdict): Standing {
  const codes = verdict.reasons.map((r) => r.code);
  if (codes.some((c) => c === 'blocked-address' || c === 'blocked-domain' || c === 'blocked-list')) return 'blocked';
  if (verdict.kind === 'inbox' && codes.some((c) => c === 'allowed-address' || c === 'allowed-domain' || c === 'allowed-list')) return 'allowed';
  return 'undecided';
}
