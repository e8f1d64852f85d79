import { test } from 'node:test';
import assert from 'node:assert/strict';
import { reputationOf, type ReputationFacts } from './reputation.ts';

const facts = (f: Partial<ReputationFacts>): ReputationFacts => ({ authenticated: false, spamScore: null, likelySpam: false, knownOnServer: null, ...f });

test('reputation orders requests by evidence, and says why', () => {
  const ordered = [
    facts({ authenticated: true, knownOnServer: 'address', spamScore: 0.5 }),
    facts({ authenticated: true, knownOnServer: 'domain', spamScore: 2 }),
    facts({ authenticated: true, spamScore: 1 }),
    facts({ authenticated: false, spamScore: 1 }),
    facts({ authenticated: true, spamScore: 7, likelySpam: true }),
    facts({ authenticated: false, spamScore: 12, likelySpam: true }),
  ].map(reputationOf);
  for (let i = 1; i < ordered.length; i++) assert.ok(ordered[i - 1]!.score > ordered[i]!.score, `row ${i}: ${JSON.stringify(ordered)}`);
  assert.deepEqual(ordered[0]!.reasons, ['a contact of someone here', 'authenticated', 'spam score 0.5']);
  assert.deepEqual(reputationOf(facts({})).reasons, ['not authenticated']);
  assert.deepEqual(reputationOf(facts({ likelySpam: true, spamScore: 100 })).score, -10 - 50 - 50, 'the spam penalty is capped');
});
