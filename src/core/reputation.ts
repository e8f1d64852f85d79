/**
 * The Screener's order: a reputation the server can explain, from what it
 * knows about a contact request (pure; services/screener.ts gathers the
 * facts). Higher is more likely a real person. The weights are a judgement,
 * kept in one place:
 *
 *   someone on this server allows the sender or its domain   +40
 *   the From: domain was authenticated (DMARC-aligned / TWM)  +30, else -10
 *   DMARC of the From: domain (dmarcWeight below):
 *     passed, and the domain publishes p=reject                +20
 *     passed, p=quarantine                                     +10
 *     failed, and the domain publishes p=reject                -40
 *     failed, p=quarantine                                     -30
 *     failed, p=none                                           -10
 *     passed with p=none, no record, or an error                 0
 *   the spam filter's latest score                           -5 per point (capped at -50), +5 below 0
 *   the latest attempt was judged likely spam                -50
 *
 * Why DMARC weighs beside "authenticated": a domain that publishes
 * p=reject has said that mail failing DMARC is not its own, so a pass is
 * worth more than a pass from a p=none domain (which anyone may register
 * and which says nothing), and a failure from it is almost surely a forged
 * From:. The server does not refuse such mail itself (the policy decides
 * on alignment alone; docs/architecture.md section 4); it only sorts it
 * down.
 */
import type { DmarcFact } from './types.ts';

export interface ReputationFacts {
  authenticated: boolean;
  /** DMARC of the latest evaluated attempt; null when none was (TWM notices, local mail). */
  dmarc: DmarcFact | null;
  spamScore: number | null;
  likelySpam: boolean;
  /** Another account (or this one) on this server allows the sender's address or domain. */
  knownOnServer: 'address' | 'domain' | null;
}

export interface Reputation {
  score: number;
  /** One short phrase per fact that counted, in the order above. */
  reasons: string[];
}

/** What a DMARC evaluation adds to the reputation, and the phrase that says why (null: it does not count). */
export function dmarcWeight(d: DmarcFact | null): { points: number; reason: string } | null {
  if (d === null) return null;
  const policy = d.policy?.toLowerCase() ?? null;
  const result = d.result.toLowerCase();
  if (result === 'pass') {
    if (policy === 'reject') return { points: 20, reason: 'DMARC pass, p=reject' };
    if (policy === 'quarantine') return { points: 10, reason: 'DMARC pass, p=quarantine' };
    return null;
  }
  if (result === 'fail') {
    if (policy === 'reject') return { points: -40, reason: 'DMARC fail, p=reject' };
    if (policy === 'quarantine') return { points: -30, reason: 'DMARC fail, p=quarantine' };
    return { points: -10, reason: 'DMARC fail, p=none' };
  }
  return null;
}

export function reputationOf(f: ReputationFacts): Reputation {
  let score = 0;
  const reasons: string[] = [];
  if (f.knownOnServer) {
    score += 40;
    reasons.push(f.knownOnServer === 'address' ? 'a contact of someone here' : 'its domain is a contact of someone here');
  }
  if (f.authenticated) {
    score += 30;
    reasons.push('authenticated');
  } else {
    score -= 10;
    reasons.push('not authenticated');
  }
  const dmarc = dmarcWeight(f.dmarc);
  if (dmarc) {
    score += dmarc.points;
    reasons.push(dmarc.reason);
  }
  if (f.spamScore !== null) {
    score += f.spamScore < 0 ? 5 : -Math.min(50, Math.round(f.spamScore * 5));
    reasons.push(`spam score ${f.spamScore.toFixed(1)}`);
  }
  if (f.likelySpam) {
    score -= 50;
    reasons.push('likely spam');
  }
  return { score, reasons };
}
