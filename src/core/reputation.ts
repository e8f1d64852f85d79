/**
 * The Screener's order: a reputation the server can explain, from what it
 * knows about a contact request (pure; services/screener.ts gathers the
 * facts). Higher is more likely a real person. The weights are a judgement,
 * kept in one place:
 *
 *   someone on this server allows the sender or its domain   +40
 *   the From: domain was authenticated (DMARC-aligned / TWM)  +30, else -10
 *   the spam filter's latest score                           -5 per point (capped at -50), +5 below 0
 *   the latest attempt was judged likely spam                -50
 *
 * Not used (yet): the DMARC policy the sender's domain publishes (the store
 * does not record it per request; a `p=reject` domain that authenticated is
 * worth more than a `p=none` one).
 */

export interface ReputationFacts {
  authenticated: boolean;
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
