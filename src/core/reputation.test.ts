import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dmarcWeight, reputationOf, type ReputationFacts } from './reputation.ts';

const facts = (f: Partial<ReputationFacts>): ReputationFacts => ({ authenticated: false, dmarc: null, spamScore: null, likelySpam: false, knownOnServer: null, ...f });

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

test('DMARC: the weight of each result and published policy', () => {
  const table: Array<[result: string, policy: string | null, points: number | null, reason?: string]> = [
    ['pass', 'reject', 20, 'DMARC pass, p=reject'],
    ['pass', 'quarantine', 10, 'DMARC pass, p=quarantine'],
    ['pass', 'none', null],
    ['pass', null, null],
    ['fail', 'reject', -40, 'DMARC fail, p=reject'],
    ['fail', 'quarantine', -30, 'DMARC fail, p=quarantine'],
    ['fail', 'none', -10, 'DMARC fail, p=none'],
    ['fail', null, -10, 'DMARC fail, p=none'],
    ['none', null, null],
    ['temperror', 'reject', null],
    ['permerror', null, null],
    // mailauth's spelling is lower case; a record's own may not be.
    ['PASS', 'REJECT', 20, 'DMARC pass, p=reject'],
  ];
  for (const [result, policy, points, reason] of table) {
    const w = dmarcWeight({ result, policy });
    assert.deepEqual(w, points === null ? null : { points, reason }, `${result} ${policy}`);
    const base = reputationOf(facts({ authenticated: result.toLowerCase() === 'pass' }));
    const r = reputationOf(facts({ authenticated: result.toLowerCase() === 'pass', dmarc: { result, policy } }));
    assert.equal(r.score - base.score, points ?? 0, `${result} ${policy}: score`);
    assert.equal(r.reasons.includes(reason ?? '-'), points !== null, `${result} ${policy}: reason listed iff it counted`);
  }
  assert.equal(dmarcWeight(null), null, 'no evaluation (TWM, local mail) counts nothing');
});

test('DMARC ranks within the other evidence', () => {
  const ordered = [
    // a p=reject domain that passed ranks above a p=none one, other facts equal
    facts({ authenticated: true, dmarc: { result: 'pass', policy: 'reject' } }),
    facts({ authenticated: true, dmarc: { result: 'pass', policy: 'quarantine' } }),
    facts({ authenticated: true, dmarc: { result: 'pass', policy: 'none' } }),
    // no DMARC record, not authenticated
    facts({ dmarc: { result: 'none', policy: null } }),
    facts({ dmarc: { result: 'fail', policy: 'none' } }),
    facts({ dmarc: { result: 'fail', policy: 'quarantine' } }),
    // a forged From: of a p=reject domain
    facts({ dmarc: { result: 'fail', policy: 'reject' } }),
  ].map(reputationOf);
  for (let i = 1; i < ordered.length; i++) assert.ok(ordered[i - 1]!.score > ordered[i]!.score, `row ${i}: ${JSON.stringify(ordered)}`);
  assert.deepEqual(ordered[0]!.reasons, ['authenticated', 'DMARC pass, p=reject']);
  assert.deepEqual(ordered[6]!.reasons, ['not authenticated', 'DMARC fail, p=reject']);
  // Being a contact of someone here still outweighs a forged-looking failure of a p=none domain.
  const known = reputationOf(facts({ knownOnServer: 'address', dmarc: { result: 'fail', policy: 'none' } }));
  assert.ok(known.score > reputationOf(facts({ dmarc: { result: 'none', policy: null } })).score);
  // A p=reject pass does not lift likely spam above a clean unauthenticated stranger.
  const spam = reputationOf(facts({ authenticated: true, dmarc: { result: 'pass', policy: 'reject' }, spamScore: 8, likelySpam: true }));
  assert.ok(spam.score < reputationOf(facts({ spamScore: 1 })).score);
});
